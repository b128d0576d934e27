"""The browser playground (``/playground``), the way in (``/``) and the offline API
reference (``/docs``): server-rendered pages (Jinja2) driven by htmx.

Everything a page shows is read through the public ``/v1`` API with the key the
browser signed in with (``api_client``), never from services or storage, so a page
sees exactly what that key's project may see."""
