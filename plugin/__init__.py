"""n2m plugin: the Qt panel that sits beside the DAW."""
