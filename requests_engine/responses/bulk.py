"""Answers to many requests in one upload: a ZIP holding a folder per request reference (`REF1/data.json`,
`REF2/export.csv`…), alone or with a CSV of `reference,action,…` lines.

A folder's files are the answer to the request it names: fulfilled, or partly fulfilled where its CSV line
says so; a folder without a CSV line means "fulfil". The whole upload is applied or none of it: every file,
folder and request is checked before anything is written, then every answer is made in one transaction, and
a failure there rolls all of them back and removes the files already stored."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, cast

from django.db import transaction
from django_fsm import can_proceed

from core.audit import Actor
from requests_engine.exceptions import BulkAnswersRefused, RequestEngineError, UploadRefused
from requests_engine.models import DataRightsRequest
from requests_engine.responses import answers as request_answers
from requests_engine.responses import files as returned_files
from requests_engine.responses.files import Upload

FULFIL, PARTIAL = "fulfil", "partially_fulfil"
# Folders and files that archivers add on their own (macOS Finder, Windows Explorer): not answers.
ARCHIVER_LITTER = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass
class Answer:
    """One request's answer, as planned from the upload and then as applied."""

    reference: str
    action: str
    files: list[Upload] = field(default_factory=list)
    source: str = ""  # "line 3", "folder B1-M0-AC": where a problem points the controller
    row: Mapping[str, str] = field(default_factory=dict)
    request_id: int | None = None
    state: str = ""  # after applying

    @property
    def label(self) -> str:
        return request_answers.ACTIONS[self.action].label

    @property
    def file_names(self) -> list[str]:
        return [PurePosixPath(upload.name).name for upload in self.files]


def _foreign_folders(opened: zipfile.ZipFile, controller_id: int) -> list[str]:
    """Top-level folders that are not one of this controller's requests, read from the directory alone."""
    named = {
        parts[0]
        for entry in opened.infolist()
        if (parts := [part for part in entry.filename.split("/") if part])
        and not ARCHIVER_LITTER & set(parts)
        and (len(parts) > 1 or entry.is_dir())
    }
    mine = set(
        request_answers.requests_for_controller(controller_id)
        .filter(reference__in=named)
        .values_list("reference", flat=True)
    )
    return sorted(named - mine)


def folders_in_zip(archive: Upload, *, controller_id: int) -> dict[str, list[Upload]]:
    """The files of each top-level folder, every one checked as a single upload is (size, emptiness, sniffed
    type, nested archives). Names, sizes and folders (each must be one of the controller's requests) are
    checked from the ZIP's directory before anything is unpacked; each file is then unpacked to a temporary
    file, never whole into memory. Raises BulkAnswersRefused listing every bad file."""
    foreign: list[str] = []
    if returned_files.sniff(archive.head()) == "application/zip":
        try:
            with zipfile.ZipFile(cast(IO[bytes], archive.opened())) as opened:
                foreign = _foreign_folders(opened, controller_id)
        except zipfile.BadZipFile:
            pass  # check_upload says what is wrong with it
    if foreign:
        raise BulkAnswersRefused(
            [f"Folder {reference}: {reference} is not one of your requests." for reference in foreign]
        )
    try:
        name, kind = returned_files.check_upload(archive)  # size, links, `../`, bombs, control characters
    except UploadRefused as refused:
        raise BulkAnswersRefused([str(refused)]) from None
    if kind != "application/zip":
        raise BulkAnswersRefused([f"“{name}” is not a ZIP file (it is {kind})."])
    folders: dict[str, list[Upload]] = {}
    problems = []
    with zipfile.ZipFile(cast(IO[bytes], archive.opened())) as opened:
        for entry in opened.infolist():
            parts = [part for part in entry.filename.replace("\\", "/").split("/") if part]
            if not parts or ARCHIVER_LITTER & set(parts):
                continue
            if entry.is_dir():
                folders.setdefault(parts[0], [])
                continue
            if len(parts) == 1:
                problems.append(
                    f"“{entry.filename}” is not in a folder: put each file in a folder named "
                    "after the request's reference."
                )
                continue
            if entry.flag_bits & 0x1:
                problems.append(f"“{entry.filename}” is password-protected: we cannot check or read it.")
                continue
            try:
                # zipfile stops at the declared size and checks the CRC: a lying header cannot make it more.
                with opened.open(entry) as member:
                    upload = returned_files.unpacked("/".join(parts[1:]), member)
            except (zipfile.BadZipFile, NotImplementedError, OSError) as error:
                problems.append(f"“{entry.filename}” cannot be unpacked ({error}).")
                continue
            try:
                returned_files.check_upload(upload)
            except UploadRefused as refused:
                problems.append(f"Folder {parts[0]}: {refused}")
                continue
            folders.setdefault(parts[0], []).append(upload)
    for reference, files in folders.items():
        if not files:
            problems.append(f"Folder {reference} holds no files.")
    if not folders and not problems:
        problems.append(
            f"“{name}” holds no folders: put each request's files in a folder named after its reference."
        )
    if problems:
        raise BulkAnswersRefused(problems)
    return folders


def answer_plan(
    *, controller_id: int, folders: dict[str, list[Upload]], rows: list[Mapping[str, str]] | None
):
    """Every answer the upload asks for, checked against this controller's requests. Raises
    BulkAnswersRefused listing every folder or line that cannot be applied."""
    problems: list[str] = []
    answers: list[Answer] = []
    by_reference: dict[str, Answer] = {}
    for line, row in enumerate(rows or [], start=2):
        reference = (row.get("reference") or "").strip()
        try:
            action = request_answers.action_named(row.get("action") or "").name
        except RequestEngineError as error:
            problems.append(f"Line {line}: {error}")
            continue
        answer = Answer(reference=reference, action=action, source=f"Line {line}", row=row)
        answers.append(answer)
        if reference in folders:
            if reference in by_reference:
                problems.append(
                    f"Line {line}: {reference} has files and another line already; give one "
                    "line per request with files."
                )
                continue
            if action not in (FULFIL, PARTIAL):
                problems.append(
                    f"Folder {reference}: its line ({line}) says “{action}”, but files go only "
                    f"with {FULFIL} or {PARTIAL}."
                )
            answer.files = folders[reference]
            answer.source = f"Folder {reference} (line {line})"
        by_reference.setdefault(reference, answer)
    for reference, files in folders.items():
        if reference not in by_reference:
            answer = Answer(reference=reference, action=FULFIL, files=files, source=f"Folder {reference}")
            answers.append(answer)
            by_reference[reference] = answer

    mine = request_answers.requests_for_controller(controller_id)
    own = {r.reference: r for r in mine.filter(reference__in=list(by_reference))}
    for answer in answers:
        request = own.get(answer.reference)
        if request is None:
            problems.append(
                f"{answer.source}: {answer.reference or '(no reference)'} is not one of your requests."
            )
            continue
        answer.request_id = request.pk
        if answer.files:
            method = request.fulfil if answer.action == FULFIL else request.partially_fulfil
            if not can_proceed(method, check_conditions=False):
                state = request.get_state_display().lower()
                problems.append(
                    f"{answer.source}: request {answer.reference} is {state}, so it cannot be answered now."
                )
    if problems:
        raise BulkAnswersRefused(problems)
    return answers


def row_answer(
    *, request_id: int, row: Mapping[str, str], actor: Actor, files: list[Upload] | None = None
) -> DataRightsRequest:
    """Apply one CSV line (`reference,action,months,reason,note,ground,kind,question,recipients_told`) to
    its request, with the files of its folder if any."""
    text = {
        key: (row.get(key) or "").strip()
        for key in ("months", "reason", "note", "ground", "kind", "question", "recipients_told")
    }
    action = request_answers.action_named(row.get("action") or "")
    months = None
    if action.name == "extend" and text["months"]:
        try:
            months = int(text["months"])
        except ValueError:
            raise RequestEngineError("months must be 1 or 2.") from None
    return request_answers.request_answer(
        request_id=request_id,
        action=action.name,
        actor=actor,
        uploads=files or [],
        note=(text["note"] or text["reason"]) if action.name == FULFIL else text["note"],
        ground=text["ground"],
        reasons=text["reason"],
        months=months,
        kind=text["kind"],
        question=text["question"],
        searches=text["note"] or text["reason"],  # for no_data: what was searched (Art 15(1A))
        recipients_told=text["recipients_told"],  # for an erasure fulfilled (Art 19)
    )


def answers_apply(
    *, controller_id: int, archive: Upload, rows: list[Mapping[str, str]] | None, actor: Actor
) -> list[Answer]:
    """Check the whole upload, then apply every answer in one transaction: all of them, or none (with the
    files stored meanwhile removed). Raises BulkAnswersRefused naming each problem."""
    answers = answer_plan(
        controller_id=controller_id, folders=folders_in_zip(archive, controller_id=controller_id), rows=rows
    )
    problems: list[str] = []
    # Rows are locked in reference order, so two uploads touching the same requests cannot deadlock.
    with returned_files.files_removed_on_failure(), transaction.atomic():
        for answer in sorted(answers, key=lambda a: a.reference):
            try:
                with transaction.atomic():  # a savepoint: keep going, to report every problem at once
                    applied = row_answer(
                        request_id=answer.request_id,
                        row={**answer.row, "action": answer.action},
                        actor=actor,
                        files=answer.files,
                    )
                    answer.state = applied.get_state_display()
            except RequestEngineError as error:
                problems.append(f"{answer.source}: {error}")
        if problems:
            raise BulkAnswersRefused(problems)  # rolls back every answer and removes their files
    return answers
