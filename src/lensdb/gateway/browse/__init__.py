"""The browse page on the HTTP port: a grid of images with their regions drawn over them.

`queries` builds the page's queries and reads their answers (pure), `views` renders HTML,
`session` keeps the visitor's lensdb session in cookies, `routes` wires them to /browse.
"""
