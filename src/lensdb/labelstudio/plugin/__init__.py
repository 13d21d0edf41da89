"""The Django app that adds the `lensdb` storage type to stock Label Studio.

Enable it by pointing DJANGO_SETTINGS_MODULE at `lensdb.labelstudio.plugin.settings`.
"""
