"""structkd: structured knowledge distillation for taggers and dependency parsers."""

__version__ = "0.1.0"
