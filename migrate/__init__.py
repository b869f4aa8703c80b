"""migrate: move department information systems onto the e-government cloud."""

__version__ = "0.1.0"
