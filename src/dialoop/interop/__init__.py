"""Importers of other systems' formats (Rasa projects, …) into dialoop's own files."""
