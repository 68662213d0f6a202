"""Running the gate: the server around ``create_app``, its connections and their
limits, graceful shutdown, SIGHUP, sd_notify, and the supervisor of several workers.

It sits above the web layer (it builds the app) and below the CLI and the demo.
"""
