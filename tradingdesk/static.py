"""The static files' storage: Django's hashed names and manifest, with WhiteNoise's compressed copies, gzip only.

gzip (level 9) compresses the whole collection (Django's admin, django-ninja's API docs, the desk's own files) in
about 2 s on this project's machines; brotli at WhiteNoise's quality took 70 s for the same files, paid again
whenever a file changes (``manage.py desk_static``), for about 15 % fewer bytes on the desk's scripts. So the
copies are gzip whether or not the ``brotli`` module happens to be installed."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class GzipManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def create_compressor(self, **kwargs):
        return super().create_compressor(use_brotli=False, **kwargs)
