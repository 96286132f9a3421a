"""Importing the controller directory from datenanfragen.de records: the service and its command."""

import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from requests_engine.directory.controller_import import controller_records, controllers_import
from requests_engine.exceptions import ControllerImportError
from requests_engine.models import Controller, Jurisdiction, Transport

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE = Path(__file__).resolve().parents[4] / "shared" / "data" / "controllers_sample.json"


@pytest.fixture(scope="module")
def sample_records() -> list[dict]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))["records"]


def record(slug: str, /, **fields) -> dict:
    base = {
        "slug": slug,
        "name": f"{slug.title()} Ltd",
        "relevant-countries": ["gb"],
        "address": "1 High Street\nLondon",
        "email": f"privacy@{slug}.example",
        "sources": [f"https://{slug}.example/privacy"],
        "quality": "verified",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# -- the sample file -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_imports_all_200_sample_records_without_rejections(sample_records: list[dict]) -> None:
    report = controllers_import(sample_records)

    assert report.rejected == []
    assert len(report.created) == 200
    assert Controller.objects.count() == 200


@pytest.mark.django_db
def test_reimporting_the_sample_creates_and_updates_nothing(sample_records: list[dict]) -> None:
    controllers_import(sample_records)

    again = controllers_import(sample_records)

    assert (again.created, again.updated, again.rejected) == ([], [], [])
    assert len(again.unchanged) == 200
    assert Controller.objects.count() == 200
    assert Controller.objects.values("slug").distinct().count() == 200


@pytest.mark.django_db
def test_load_records_reads_the_records_of_the_sample_object() -> None:
    assert len(controller_records(SAMPLE)) == 200


@pytest.mark.django_db
def test_openai_is_imported_with_its_privacy_email_and_email_transport(sample_records: list[dict]) -> None:
    controllers_import(sample_records)

    openai = Controller.objects.get(slug="openai")
    assert openai.name == "OpenAI, L.L.C."
    assert openai.email == "dsar@openai.com"
    assert openai.transport == Transport.EMAIL
    assert openai.web == "https://openai.com/"
    assert openai.postal_address.startswith("3180 18th St\n")
    assert openai.categories == ["social media", "telecommunication"]
    assert openai.relevant_countries == ["all"]
    assert openai.quality == "verified"
    assert openai.jurisdiction == Jurisdiction.ENGLAND_AND_WALES


@pytest.mark.django_db
def test_whatsapp_without_email_gets_webform_transport_and_keeps_required_identifiers(
    sample_records: list[dict],
) -> None:
    controllers_import(sample_records)

    whatsapp = Controller.objects.get(slug="whatsapp")
    assert whatsapp.email == ""
    assert whatsapp.transport == Transport.WEBFORM
    assert whatsapp.webform_url == "https://www.whatsapp.com/contact/forms/382532939919295/"
    assert whatsapp.web == "https://www.whatsapp.com/"
    assert whatsapp.runs == ["WhatsApp Inc."]
    assert whatsapp.required_identifiers == [
        {"desc": "Name", "type": "name", "optional": False},
        {"desc": "WhatsApp phone number", "type": "input"},
    ]


@pytest.mark.django_db
def test_sample_record_with_neither_email_nor_webform_gets_letter_transport(
    sample_records: list[dict],
) -> None:
    controllers_import(sample_records)

    cifas = Controller.objects.get(slug="cifas")
    assert (cifas.email, cifas.webform_url, cifas.transport) == ("", "", Transport.LETTER)


@pytest.mark.django_db
def test_sample_comments_and_id_document_flags_are_imported(sample_records: list[dict]) -> None:
    controllers_import(sample_records)

    assert Controller.objects.get(slug="openai-ireland-limited").comments == ["DPO: dpo@openai.com"]
    wanted = {r["slug"] for r in sample_records if r.get("needs-id-document") is True}
    assert set(Controller.objects.filter(needs_id_document=True).values_list("slug", flat=True)) == wanted


# -- mapping rules ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "transport"),
    [
        ({"suggested-transport-medium": "email"}, Transport.EMAIL),
        ({"suggested-transport-medium": "letter"}, Transport.LETTER),
        ({"suggested-transport-medium": "fax", "fax": "+44 20 7946 0000"}, Transport.LETTER),
        (
            {"suggested-transport-medium": "webform", "webform": "https://acme.example/dsar"},
            Transport.WEBFORM,
        ),
        ({}, Transport.EMAIL),
        ({"email": None, "webform": "https://acme.example/dsar"}, Transport.WEBFORM),
        ({"email": None}, Transport.LETTER),
    ],
    ids=[
        "email",
        "letter",
        "fax-becomes-letter",
        "webform",
        "derived-email",
        "derived-webform",
        "derived-letter",
    ],
)
def test_transport_follows_the_suggested_medium_or_is_derived(fields: dict, transport: str) -> None:
    report = controllers_import([record("acme", **fields)])

    assert report.rejected == []
    assert Controller.objects.get(slug="acme").transport == transport


@pytest.mark.django_db
def test_a_comment_given_as_a_string_is_stored_as_a_one_item_list() -> None:
    controllers_import([record("acme", comments="Answers slowly.")])

    assert Controller.objects.get(slug="acme").comments == ["Answers slowly."]


@pytest.mark.django_db
def test_a_changed_field_on_reimport_is_reported_as_updated() -> None:
    controllers_import([record("acme"), record("globex")])

    report = controllers_import([record("acme", email="dpo@acme.example"), record("globex")])

    assert (report.created, report.updated, report.unchanged) == ([], ["acme"], ["globex"])
    assert Controller.objects.get(slug="acme").email == "dpo@acme.example"


@pytest.mark.django_db
def test_a_field_dropped_upstream_is_cleared_on_reimport() -> None:
    controllers_import([record("acme", phone="+44 20 7946 0001")])

    report = controllers_import([record("acme")])

    assert report.updated == ["acme"]
    assert Controller.objects.get(slug="acme").phone == ""


@pytest.mark.django_db
def test_hand_set_jurisdiction_and_delivery_settings_survive_reimport() -> None:
    controllers_import([record("acme")])
    Controller.objects.filter(slug="acme").update(
        jurisdiction=Jurisdiction.SCOTLAND,
        individual_requests=True,
        drp_endpoint="https://drp.acme.example/v1",
        transport=Transport.DRP,
    )

    unchanged = controllers_import([record("acme")])
    updated = controllers_import([record("acme", name="Acme Holdings plc")])

    assert unchanged.unchanged == ["acme"]
    assert updated.updated == ["acme"]
    acme = Controller.objects.get(slug="acme")
    assert acme.name == "Acme Holdings plc"
    assert acme.jurisdiction == Jurisdiction.SCOTLAND
    assert acme.individual_requests is True
    assert acme.drp_endpoint == "https://drp.acme.example/v1"
    assert acme.transport == Transport.DRP


@pytest.mark.django_db
def test_update_moves_updated_at_forward() -> None:
    controllers_import([record("acme")])
    before = Controller.objects.get(slug="acme").updated_at

    controllers_import([record("acme", name="Acme Two")])

    assert Controller.objects.get(slug="acme").updated_at > before


# -- bad records -----------------------------------------------------------------------------------------


BAD_FILE_RECORDS = [
    record("good-one"),  # 0
    record("missing-slug", slug=None),  # 1
    record("bad-email", email="not-an-address"),  # 2
    record("bad-url", webform="javascript:alert(1)"),  # 3
    ["not", "an", "object"],  # 4
    record("good-one", name="Second Good One"),  # 5
    record("bad-elements", **{"required-elements": [{"desc": "Name"}]}),  # 6
    record("good-two"),  # 7
    record("Bad Slug!"),  # 8
    record("no-name", name="  "),  # 9
    record("bad-medium", **{"suggested-transport-medium": "pigeon"}),  # 10
    record("bad-web", web="not a url"),  # 11
    record("bad-id", **{"needs-id-document": "yes"}),  # 12
    record("elements-not-list", **{"required-elements": "name"}),  # 13
]


@pytest.mark.django_db
def test_bad_records_are_skipped_with_reasons_and_good_ones_imported() -> None:
    report = controllers_import(copy.deepcopy(BAD_FILE_RECORDS))

    assert report.created == ["good-one", "good-two"]
    assert set(Controller.objects.values_list("slug", flat=True)) == {"good-one", "good-two"}
    assert Controller.objects.get(slug="good-one").name == "Good-One Ltd"  # the first one wins
    reasons = dict(report.rejected)
    assert list(reasons) == [
        "record 1",
        "record 2 (slug 'bad-email')",
        "record 3 (slug 'bad-url')",
        "record 4",
        "record 5 (slug 'good-one')",
        "record 6 (slug 'bad-elements')",
        "record 8 (slug 'Bad Slug!')",
        "record 9 (slug 'no-name')",
        "record 10 (slug 'bad-medium')",
        "record 11 (slug 'bad-web')",
        "record 12 (slug 'bad-id')",
        "record 13 (slug 'elements-not-list')",
    ]
    assert reasons["record 1"] == "slug is missing"
    assert "not a valid email address" in reasons["record 2 (slug 'bad-email')"]
    assert "webform" in reasons["record 3 (slug 'bad-url')"]
    assert "not a valid" in reasons["record 3 (slug 'bad-url')"]
    assert reasons["record 4"] == "not a JSON object (a list)"
    assert reasons["record 5 (slug 'good-one')"] == "duplicate slug in this file"
    assert "required-elements[0]" in reasons["record 6 (slug 'bad-elements')"]
    assert "'type'" in reasons["record 6 (slug 'bad-elements')"]
    assert "slug may contain only" in reasons["record 8 (slug 'Bad Slug!')"]
    assert reasons["record 9 (slug 'no-name')"] == "name is empty"
    assert "pigeon" in reasons["record 10 (slug 'bad-medium')"]
    assert reasons["record 11 (slug 'bad-web')"].startswith("web ")
    assert "needs-id-document" in reasons["record 12 (slug 'bad-id')"]
    assert "required-elements must be a list" in reasons["record 13 (slug 'elements-not-list')"]


@pytest.mark.django_db
def test_a_transport_with_nothing_to_send_to_is_rejected() -> None:
    report = controllers_import(
        [
            record("no-form", **{"suggested-transport-medium": "webform"}),
            record("no-mail", email=None, **{"suggested-transport-medium": "email"}),
        ]
    )

    assert [reason for _, reason in report.rejected] == [
        "suggested-transport-medium is webform but there is no webform URL",
        "suggested-transport-medium is email but there is no email address",
    ]
    assert Controller.objects.count() == 0


@pytest.mark.django_db
def test_a_record_rejected_on_reimport_leaves_the_stored_controller_alone() -> None:
    controllers_import([record("acme")])

    report = controllers_import([record("acme", email="broken@")])

    assert len(report.rejected) == 1
    assert Controller.objects.get(slug="acme").email == "privacy@acme.example"


# -- load_records ----------------------------------------------------------------------------------------


def test_load_records_accepts_a_top_level_list(tmp_path: Path) -> None:
    path = write_json(tmp_path / "list.json", [record("acme")])

    assert controller_records(path) == [record("acme")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[{"slug": "acme",\n  "name": }]', "invalid JSON at line 2, column 11"),
        (b'"just a string"', "not a string"),
        (b'{"controllers": []}', 'object with a "records" list, not an object without "records"'),
        (b'{"records": {"slug": "acme"}}', '"records" must be a list, not an object'),
        (b'[{"name": "Caf\xe9"}]', "not UTF-8"),
        (b"", "invalid JSON at line 1, column 1"),
    ],
    ids=[
        "invalid-json",
        "top-level-string",
        "object-without-records",
        "records-not-list",
        "latin-1",
        "empty",
    ],
)
def test_load_records_refuses_a_malformed_file_with_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)

    with pytest.raises(ControllerImportError) as caught:
        controller_records(path)

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_load_records_refuses_a_missing_file_or_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ControllerImportError, match="no such file"):
        controller_records(tmp_path / "missing.json")
    with pytest.raises(ControllerImportError, match="is a directory"):
        controller_records(tmp_path)


# -- the management command ------------------------------------------------------------------------------


def run_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_controllers", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_command_imports_the_sample_and_prints_the_counts() -> None:
    out, err = run_command(str(SAMPLE))

    assert out == "created 200, updated 0, unchanged 0, rejected 0\n"
    assert err == ""
    assert Controller.objects.count() == 200


@pytest.mark.django_db
def test_command_reports_each_rejected_record_on_stderr_and_imports_the_rest(tmp_path: Path) -> None:
    path = write_json(tmp_path / "mixed.json", {"records": BAD_FILE_RECORDS})

    out, err = run_command(str(path))  # no CommandError: rejected records are reported, not fatal

    assert out == "created 2, updated 0, unchanged 0, rejected 12\n"
    lines = err.splitlines()
    assert len(lines) == 12
    assert lines[0] == "rejected record 1: slug is missing"
    assert "rejected record 5 (slug 'good-one'): duplicate slug in this file" in lines
    assert Controller.objects.count() == 2


@pytest.mark.django_db
def test_command_dry_run_changes_nothing_and_says_so() -> None:
    controllers_import([record("acme")])

    out, _ = run_command(str(SAMPLE), "--dry-run")

    assert out.splitlines() == [
        "created 200, updated 0, unchanged 0, rejected 0",
        "Dry run: rolled back, nothing was saved.",
    ]
    assert list(Controller.objects.values_list("slug", flat=True)) == ["acme"]


@pytest.mark.django_db
def test_command_dry_run_leaves_updates_unsaved(tmp_path: Path) -> None:
    controllers_import([record("acme")])
    path = write_json(tmp_path / "renamed.json", [record("acme", name="Renamed")])

    out, _ = run_command(str(path), "--dry-run")

    assert out.startswith("created 0, updated 1, unchanged 0, rejected 0\n")
    assert Controller.objects.get(slug="acme").name == "Acme Ltd"


BAD_FILES = {
    "nonexistent": None,
    "invalid-json": b'{"records": [',
    "top-level-string": b'"controllers"',
    # Hostile input: Python's integer limit, text no database column can hold.
    "5000-digit-number": b'[{"slug": "acme", "name": "Acme", "quality": ' + b"9" * 5000 + b"}]",
    "nul": b'[{"slug": "acme", "name": "Ac\\u0000me"}]',
    "lone-surrogate": b'[{"slug": "acme", "name": "\\ud800"}]',
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["Acme\x07 Ltd", "Acme\u202e dtL", "Acme\nLtd"])
def test_a_name_with_a_control_character_is_rejected(name: str) -> None:
    report = controllers_import([record("acme", name=name)])
    assert [reason for _, reason in report.rejected] == [
        f"name contains a control character (U+{ord(next(c for c in name if not c.isprintable())):04X})"
    ]


@pytest.mark.django_db
def test_a_postal_address_keeps_its_line_breaks() -> None:
    report = controllers_import([{**record("acme"), "address": "1 High St\nLondon"}])
    assert report.rejected == [] and Controller.objects.get(slug="acme").postal_address == "1 High St\nLondon"


def bad_file(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.json"
    if BAD_FILES[case] is not None:
        path.write_bytes(BAD_FILES[case])
    return path


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_command_refuses_a_bad_file_with_status_2_and_changes_nothing(tmp_path: Path, case: str) -> None:
    controllers_import([record("acme")])

    with pytest.raises(CommandError) as caught:
        run_command(str(bad_file(tmp_path, case)))

    assert caught.value.returncode == 2
    assert "\n" not in str(caught.value)
    assert list(Controller.objects.values_list("slug", flat=True)) == ["acme"]


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_command_line_refuses_a_bad_file_with_one_line_and_no_traceback(tmp_path: Path, case: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "import_controllers", str(bad_file(tmp_path, case))],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CommandError: ")
    assert result.stdout == ""


@pytest.mark.django_db
def test_import_queries_in_batches_not_once_per_record(sample_records: list[dict]) -> None:
    with CaptureQueriesContext(connection) as creating:
        controllers_import(sample_records)
    renamed = [{**r, "name": r["name"] + " (renamed)"} for r in sample_records]
    with CaptureQueriesContext(connection) as updating:
        report = controllers_import(renamed)

    assert len(report.updated) == 200
    # One fetch by slug, then inserts/updates in batches (SQLite caps parameters per statement).
    assert len(creating) <= 12
    assert len(updating) <= 12


@pytest.mark.django_db
def test_a_crash_midway_leaves_the_database_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    controllers_import([record("acme")])

    def crash(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Controller.objects, "bulk_update", crash)
    with pytest.raises(RuntimeError):
        controllers_import([record("acme", name="Renamed"), record("globex")])

    assert list(Controller.objects.values_list("slug", "name")) == [("acme", "Acme Ltd")]
