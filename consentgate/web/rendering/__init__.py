"""What the gate writes itself: its pages and JSON errors with their security headers, and
the templates they are rendered from.
"""
