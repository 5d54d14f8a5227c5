"""The jinja2 templates and CSS of an edition, shipped inside the package as ``digest.templates``."""
