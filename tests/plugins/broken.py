"""Five deliberately broken plugins, a contract mismatch among them, and one good plugin."""

from __future__ import annotations

from tests.plugins.wheels import PluginDist

GOOD = PluginDist(
    name="acme-good",
    version="1.2.0",
    modules={
        "acme_good": """
        import numpy as np

        AIMASS_PLUGIN_CONTRACT = "1.0"


        class DropEmpty:
            name = "acme.drop_empty"

            def clean(self, table):
                return table.dropna(how="all")


        class Median:
            name = "acme.median"

            def fuse(self, outputs, weights):
                return np.median(np.stack(outputs), axis=0)


        def register(registries):
            registries.data_cleaners.register(DropEmpty())
            registries.fusion_strategies.register(Median())
        """
    },
    entry_points={"acme-good": "acme_good:register"},
)

#: entry point name -> (distribution, a fragment of the reason it must fail with)
BROKEN: dict[str, tuple[PluginDist, str]] = {
    "needs-missing-lib": (
        PluginDist(
            name="broken-import",
            modules={"broken_import": "import acme_library_not_installed\n\ndef register(r): pass"},
            entry_points={"needs-missing-lib": "broken_import:register"},
        ),
        "ModuleNotFoundError: No module named 'acme_library_not_installed'",
    ),
    "two-args": (
        PluginDist(
            name="broken-signature",
            modules={"broken_signature": "def register(registries, settings):\n    pass\n"},
            entry_points={"two-args": "broken_signature:register"},
        ),
        "must take exactly one argument, the registries",
    ),
    "raises": (
        PluginDist(
            name="broken-register",
            modules={"broken_register": "def register(r):\n    raise RuntimeError('acme bug')\n"},
            entry_points={"raises": "broken_register:register"},
        ),
        "RuntimeError: acme bug",
    ),
    "hangs": (
        PluginDist(
            name="broken-hang",
            modules={
                "broken_hang": "import threading\n\nthreading.Event().wait()\n\n"
                "def register(r):\n    pass\n"
            },
            entry_points={"hangs": "broken_hang:register"},
        ),
        "timed out",
    ),
    "wrong-type": (
        PluginDist(
            name="broken-type",
            modules={
                "broken_type": """
                class NotACleaner:
                    name = "acme.not_a_cleaner"

                    def scrub(self, table):
                        return table


                def register(registries):
                    registries.data_cleaners.register(NotACleaner())
                """
            },
            entry_points={"wrong-type": "broken_type:register"},
        ),
        "data_cleaners item 'acme.not_a_cleaner' has no method clean()",
    ),
    "future-contract": (
        PluginDist(
            name="broken-contract",
            version="2.0.0",
            modules={
                "broken_contract": """
                AIMASS_PLUGIN_CONTRACT = "2.0"


                class Cleaner:
                    name = "acme.future_cleaner"

                    def clean(self, table):
                        return table


                def register(registries):
                    registries.data_cleaners.register(Cleaner())
                """
            },
            entry_points={"future-contract": "broken_contract:register"},
        ),
        "built for plugin contract 2.0, but this aimass speaks contract 1.0",
    ),
}
