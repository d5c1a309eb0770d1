"""`--remote DEST`: bench, tune and predict on a device reached by SSH (ssh.py: OpenSSH's
client; agent.py: the device's side; device.py: bootstrap and sync; run.py: the commands,
one device or a fleet; jetson.py and tegrastats.py: a Jetson's power mode, clocks and power
around a bench, on the board). The workstation needs OpenSSH's client, the device Python
3.10+ and a route to a package index or a wheelhouse; nothing is installed by hand on either.
"""
