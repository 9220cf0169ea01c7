"""The embedded lab: real Keystone and Glance processes on 127.0.0.1 plus a resmgr emulator.

Shares no code with ``imagelib_ha``: it follows PCD's public API shapes on its own, so a wrong field
name on either side shows up as a failing integration test instead of passing silently.
"""
