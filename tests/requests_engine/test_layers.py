"""The layers hold: the models import no job module (campaigns, dispatch, responses, escalation, …)."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# A finder that runs before the real ones: it notes every requests_engine module whose import begins
# while requests_engine.models is still executing, i.e. everything the models pull in.
PROBE = """
import importlib.abc, os, sys
pulled = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        models = sys.modules.get("requests_engine.models")
        if models is not None and getattr(models.__spec__, "_initializing", False):
            if name.startswith("requests_engine.") and name not in sys.modules:
                pulled.append(name)
        return None
sys.meta_path.insert(0, Watch())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
import requests_engine.models
assert "requests_engine.models" in sys.modules
print(" ".join(sorted(set(pulled))))
"""

# Below the models: what they may import. Everything else in requests_engine is a job or a surface.
BELOW_MODELS = {"requests_engine.deadlines", "requests_engine.exceptions"}


def test_importing_the_models_imports_no_job_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    pulled = set(result.stdout.split())
    assert pulled <= BELOW_MODELS, f"requests_engine.models imports {sorted(pulled - BELOW_MODELS)}"
