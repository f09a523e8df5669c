"""RabbitMQ transport: topology, confirming publisher, batch consumer. The only package that imports pika."""
