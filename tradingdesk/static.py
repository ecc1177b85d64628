"""How the static files are kept and sent. The storage: Django's hashed names and manifest, with WhiteNoise's
compressed copies, gzip only.

gzip (level 9) compresses the whole collection (Django's admin, django-ninja's API docs, the desk's own files) in
about 2 s on this project's machines; brotli at WhiteNoise's quality took 70 s for the same files, paid again
whenever a file changes (``manage.py desk_static``), for about 15 % fewer bytes on the desk's scripts. So the
copies are gzip whether or not the ``brotli`` module happens to be installed."""

from __future__ import annotations

from inspect import iscoroutinefunction

from asgiref.sync import sync_to_async
from django.utils.decorators import sync_and_async_middleware
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.storage import CompressedManifestStaticFilesStorage


class GzipManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def create_compressor(self, **kwargs):
        return super().create_compressor(use_brotli=False, **kwargs)


@sync_and_async_middleware
def static_files(get_response):
    """WhiteNoise's middleware, made async-capable: its own is sync only, and one sync middleware makes Django run
    every request's whole middleware chain through the one thread that sync code shares. A request for a static
    file is answered here (a lookup in WhiteNoise's table of the collected files, which it builds at start); any
    other goes on at once, as it came."""
    whitenoise = WhiteNoiseMiddleware(get_response)

    def served(request):
        found = (whitenoise.find_file(request.path_info) if whitenoise.autorefresh
                 else whitenoise.files.get(request.path_info))
        return whitenoise.serve(found, request) if found is not None else None

    if iscoroutinefunction(get_response):
        async def middleware(request):
            response = served(request) if request.path_info.startswith(whitenoise.static_prefix) else None
            if response is None:
                return await get_response(request)
            if response.streaming:                    # the file, read off the event loop as Django's own does
                chunks = response.streaming_content

                async def read():
                    for chunk in await sync_to_async(list)(chunks):
                        yield chunk
                response.streaming_content = read()
            return response
    else:
        def middleware(request):
            response = served(request) if request.path_info.startswith(whitenoise.static_prefix) else None
            return get_response(request) if response is None else response
    return middleware
