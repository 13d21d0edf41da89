"""Label Studio integration: lensdb as source and target storage of stock Label Studio.

`mapping`, `labelconfig` and `queries` are free of Django so a standalone connector can use
them; `plugin` is the Django app loaded into Label Studio by `plugin.settings`.
"""
