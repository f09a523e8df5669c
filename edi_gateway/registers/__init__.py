"""Register interfaces (population, Adresseregister, Fastlegeregister) and their fixture-backed implementation."""
