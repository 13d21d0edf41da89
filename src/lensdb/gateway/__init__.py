"""Media gateway on lensdb's HTTP port: media by URL with CORS, signed links, Label Studio task lists and webhook.

Importing `lensdb.gateway.routes` registers the routes; `lensdb serve` finds it through the
`lensdb.http_routes` entry point.
"""
