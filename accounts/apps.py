from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from . import (
            audit,  # noqa: F401 - connects the log-in / failed log-in audit receivers
            limits,  # noqa: F401 - counts failed log-ins per address
        )
