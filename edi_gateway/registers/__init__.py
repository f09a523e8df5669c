"""Register interfaces (population, Adresseregister, Fastlegeregister) and a fixture-backed implementation."""
