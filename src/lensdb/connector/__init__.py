"""The standalone Label Studio connector: push images as tasks, pull annotations back, register webhooks.

It talks to Label Studio only through its public REST API and to lensdb like any client
(the aperturedb SDK's Connector, plus the gateway's HTTP routes for signed task lists).
"""
