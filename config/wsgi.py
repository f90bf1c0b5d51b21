import os

from django.core.wsgi import get_wsgi_application

from config.embedded import embedded_start

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
embedded_start()

application = get_wsgi_application()
