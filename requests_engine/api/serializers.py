"""The controller API's serializers: one input serializer per action, and the output shapes.

Input serializers check everything the services would refuse for bad input (a missing reason, an unknown
ground, a refused upload), so a service error after validation can only be about the request's state.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, cast

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from communities.documents import authority_url
from communities.models import Authority, Identifier, Right
from requests_engine.authorities import authority_issue
from requests_engine.events import describe
from requests_engine.exceptions import UploadRefused
from requests_engine.grounds import GROUNDS, request_grounds
from requests_engine.models import (
    Art15Item,
    DataRightsRequest,
    InformationKind,
    ObjectionTo,
    Outcome,
    RefusalGround,
    RequestEvent,
    RequestState,
)
from requests_engine.responses import answers
from requests_engine.responses.answers import HIDDEN_STATES
from requests_engine.responses.files import Upload, check_upload

VISIBLE_STATES = [(s.value, s.label) for s in RequestState if s not in HIDDEN_STATES]
REFERENCE_PATTERN = r"[A-Za-z0-9_-]{1,40}"
MAX_FILES = 100

# The actions a controller can take, by the step in their URL.
ACTIONS = {action.api_step: action for action in answers.ACTIONS.values()}


def action_url_name(step: str) -> str:
    return f"api-request-{step}"


def _detail_url(context: Mapping[str, Any], obj: DataRightsRequest) -> str:
    urls = cast(dict[str, Any], context).setdefault(
        "detail_urls", {}
    )  # `url` and `actions` both need it: reverse once per row
    if obj.pk not in urls:
        urls[obj.pk] = context["request"].build_absolute_uri(
            reverse("api-request-detail", args=[obj.reference])
        )
    return urls[obj.pk]


# Labels by dict lookup: DRF inspects a callable source such as get_state_display on every row.
_STATE_LABELS = dict(RequestState.choices)
_RIGHT_LABELS = dict(Right.choices)
_IDENTIFIER_LABELS = dict(Identifier.Kind.choices)


# -- errors (for the schema) ---------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


# DRF's 400 body: field name (or non_field_errors, or detail for an unreadable body) -> messages.
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Field errors: each key names a field (or `non_field_errors`, or `detail` when the body "
    "could not be read) and holds its messages.",
    "additionalProperties": {},
}


# -- list filters ----------------------------------------------------------------------------------------


class RequestFilterSerializer(serializers.Serializer):
    state = serializers.MultipleChoiceField(
        choices=VISIBLE_STATES, required=False, help_text="One or more states (repeat the parameter)."
    )
    right = serializers.ChoiceField(choices=Right.choices, required=False)
    campaign = serializers.CharField(required=False, max_length=16, help_text="A campaign reference.")
    due_before = serializers.DateField(required=False, help_text="Due on or before this date.")
    due_after = serializers.DateField(required=False, help_text="Due on or after this date.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A filter given empty ("?right=") is a mistake, not "no filter": DRF would silently drop it, so
        # it is refused here, as the schema says (minLength 1, an enum, a date).
        given = self.initial_data
        names: list[str] = list(self.fields.keys())
        empty = [
            name
            for name in names
            if name in given
            and any(not str(v).strip() for v in given.getlist(name) if hasattr(given, "getlist"))
        ]
        if empty:
            raise serializers.ValidationError(
                {name: ["Give a value, or leave the filter out."] for name in empty}
            )
        return attrs


# -- output ------------------------------------------------------------------------------------------------


class IdentifierSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text=f"One of: {', '.join(Identifier.Kind.values)}.")
    kind_label = serializers.SerializerMethodField()
    label = serializers.CharField(  # type: ignore[assignment]  # a field named "label", not Field.label
        help_text="The controller's own name for it, if the member gave one."
    )
    value = serializers.CharField()
    for_this_controller = serializers.SerializerMethodField(
        help_text="False for an identifier the member gave for every controller."
    )

    def get_kind_label(self, identifier: Identifier) -> str:
        return _IDENTIFIER_LABELS.get(identifier.kind, identifier.kind)

    def get_for_this_controller(self, identifier: Identifier) -> bool:
        return identifier.controller_id is not None


class MemberSerializer(serializers.Serializer):
    reference = serializers.CharField()
    full_name = serializers.CharField()
    identifiers = IdentifierSerializer(many=True, source="api_identifiers")


class MandateSerializer(serializers.Serializer):
    """The member's mandate as this controller may see it: its authority document, never the full mandate
    (which names other organisations). Reads the request, whose controller the document is for."""

    reference = serializers.CharField(source="mandate.reference")
    state = serializers.CharField(source="mandate.state")
    verify_url = serializers.SerializerMethodField(
        help_text="Public page where anyone can check the authority document and whether it is in force."
    )
    pdf_sha256 = serializers.SerializerMethodField(
        help_text="SHA-256 of the sealed authority document (PDF) for this controller."
    )

    def _authority(self, data_request) -> Authority:
        issued = getattr(data_request.mandate, "api_authorities", None)
        if issued:
            return issued[0]
        return authority_issue(mandate=data_request.mandate, controller=data_request.controller)

    def get_verify_url(self, data_request) -> str:
        return authority_url(self._authority(data_request))

    def get_pdf_sha256(self, data_request) -> str:
        return self._authority(data_request).pdf_sha256


class InformationRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=InformationKind.choices, source="info_kind")
    question = serializers.CharField(source="info_question")
    asked_on = serializers.DateField(source="info_requested_on")


class RefusalSerializer(serializers.Serializer):
    ground = serializers.ChoiceField(choices=RefusalGround.choices, source="refusal_ground")
    reasons = serializers.CharField(source="refusal_reasons")


class ActionLinkSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(ACTIONS))
    method = serializers.CharField()
    href = serializers.URLField()


class RequestSerializer(serializers.Serializer):
    """A request as its controller sees it in lists."""

    reference = serializers.CharField()
    url = serializers.SerializerMethodField()
    right = serializers.ChoiceField(choices=Right.choices)
    right_label = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=VISIBLE_STATES)
    state_label = serializers.SerializerMethodField()
    received_on = serializers.DateField(allow_null=True)
    due_on = serializers.DateField(allow_null=True)
    days_left = serializers.SerializerMethodField(
        help_text="Days until the due date (negative once passed); null while the clock is stopped."
    )
    clock_paused = serializers.BooleanField()
    campaign = serializers.CharField(source="campaign.reference", allow_null=True)
    member = MemberSerializer()
    mandate = MandateSerializer(source="*")
    information_request = serializers.SerializerMethodField(
        help_text="While the request waits for information: what was asked, and when."
    )
    actions = serializers.SerializerMethodField(help_text="What the controller can do now.")

    def _today(self) -> datetime.date:
        return self.context["today"]

    def get_url(self, obj: DataRightsRequest) -> str:
        return _detail_url(self.context, obj)

    def get_right_label(self, obj: DataRightsRequest) -> str:
        return _RIGHT_LABELS.get(obj.right, obj.right)

    def get_state_label(self, obj: DataRightsRequest) -> str:
        return _STATE_LABELS.get(obj.state, obj.state)

    def get_days_left(self, obj: DataRightsRequest) -> int | None:
        return obj.days_left(self._today())

    @extend_schema_field(InformationRequestSerializer(allow_null=True))
    def get_information_request(self, obj: DataRightsRequest) -> dict[str, Any] | None:
        if obj.state != RequestState.INFO_REQUESTED:
            return None
        return InformationRequestSerializer(obj).data

    @extend_schema_field(ActionLinkSerializer(many=True))
    def get_actions(self, obj: DataRightsRequest) -> list[dict[str, str]]:
        steps = [action.api_step for action in answers.actions_allowed(obj)]
        if not steps:
            return []
        # Each action's address is the request's own plus its step (api/urls.py): one reverse per row.
        base = _detail_url(self.context, obj)
        return [{"action": step, "method": "POST", "href": f"{base}{step}/"} for step in steps]


class EventSerializer(serializers.Serializer):
    at = serializers.DateTimeField(source="created_at")
    code = serializers.CharField(source="kind", help_text="A stable dotted code, e.g. request.extended.")
    sentence = serializers.SerializerMethodField()

    def get_sentence(self, event: RequestEvent) -> str:
        return describe(event)


class ReceivedFileSerializer(serializers.Serializer):
    name = serializers.CharField(source="original_name")
    size = serializers.IntegerField()
    content_type = serializers.CharField(help_text="Sniffed from the content.")
    sha256 = serializers.CharField()
    received_at = serializers.DateTimeField()


class IdentityDocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="original_name")
    size = serializers.IntegerField()
    content_type = serializers.CharField(help_text="Sniffed from the content: a PDF or a photo.")
    sha256 = serializers.CharField()
    uploaded_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField(help_text="GET it with your token; each download is recorded.")

    def get_url(self, document) -> str:
        path = reverse("api-identity-document", args=[document.request.reference, document.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class RequestDetailSerializer(RequestSerializer):
    """A request with its answer so far and its history."""

    extension_months = serializers.IntegerField()
    extension_reason = serializers.CharField()
    answered_on = serializers.DateField(allow_null=True)
    outcome = serializers.ChoiceField(
        choices=Outcome.choices,
        allow_blank=True,
        help_text="What the answer means in law; blank until answered. no_data_held is an answer, not a "
        "refusal.",
    )
    outcome_statement = serializers.CharField(
        help_text="What the controller stated with it: for no_data_held, the searches made (Art 15(1A))."
    )
    recipients_told = serializers.CharField(
        help_text="For an erasure done: whom the controller told of it, or that there was no one (Art 19)."
    )
    objection_to = serializers.SerializerMethodField(
        help_text="For an objection: processing (Art 21(1)) or direct_marketing (Art 21(2), absolute)."
    )
    refusal = serializers.SerializerMethodField(
        help_text="The legal ground and reasons of a (partial) refusal."
    )
    refusal_grounds = serializers.SerializerMethodField(
        help_text="The legal grounds you may give for not acting on this request, for its right."
    )
    files = ReceivedFileSerializer(many=True)
    identity_documents = serializers.SerializerMethodField(
        help_text="Documents the member uploaded to show who they are (Art 12(6)), until 30 days after close."
    )
    history = EventSerializer(many=True, source="events")

    def get_objection_to(self, obj: DataRightsRequest) -> str:
        if obj.right != "objection":
            return ""
        return ObjectionTo.DIRECT_MARKETING if obj.objects_to_direct_marketing else ObjectionTo.PROCESSING

    def get_refusal_grounds(self, obj: DataRightsRequest) -> list[str]:
        return [code for code, _ in request_grounds(obj)]

    @extend_schema_field(IdentityDocumentSerializer(many=True))
    def get_identity_documents(self, obj: DataRightsRequest) -> list[dict[str, Any]]:
        documents = [d for d in obj.identity_documents.all() if d.deleted_at is None]
        return list(IdentityDocumentSerializer(documents, many=True, context=self.context).data)

    @extend_schema_field(RefusalSerializer(allow_null=True))
    def get_refusal(self, obj: DataRightsRequest) -> dict[str, Any] | None:
        return RefusalSerializer(obj).data if obj.refusal_ground else None


# -- action input --------------------------------------------------------------------------------------------


class FileListField(serializers.ListField):
    """Files sent as repeated `files` parts; `files[]`, as some clients name them, is read too."""

    def get_value(self, dictionary):
        value = super().get_value(dictionary)
        if value is serializers.empty and hasattr(dictionary, "getlist") and dictionary.getlist("files[]"):
            return dictionary.getlist("files[]")
        return value


@extend_schema_field(OpenApiTypes.BINARY)
class UploadField(serializers.FileField):
    """One uploaded file. Empty files pass here so that the upload check refuses them in its own words."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_empty_file=True, use_url=False, **kwargs)


def _files_field(help_text: str) -> FileListField:
    return FileListField(
        child=UploadField(),
        required=False,
        max_length=MAX_FILES,
        help_text=help_text,
    )


def _checked_uploads(files) -> list[Upload]:
    """Run the returned-data checks (name, emptiness, size, sniffed type, ZIP safety) before any action, so
    a refused file is a 400 on `files` and nothing is stored."""
    uploads = [Upload(name=f.name or "", data=f) for f in files]
    errors = []
    for upload in uploads:
        try:
            check_upload(upload)
        except UploadRefused as refused:
            errors.append(str(refused))
    if errors:
        raise serializers.ValidationError(errors)
    return uploads


class AcknowledgeInputSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=4000)


class RequestInformationInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=InformationKind.choices,
        help_text="identity only where in reasonable doubt (Art 12(6)); the clock stands still until the "
        "answer (Art 12A).",
    )
    question = serializers.CharField(
        max_length=4000, help_text="What you need, in words the member understands."
    )


class ExtendInputSerializer(serializers.Serializer):
    months = serializers.ChoiceField(choices=[(1, "One month"), (2, "Two months")])
    reason = serializers.CharField(
        max_length=4000,
        help_text="Art 12(3) UK GDPR: why this data subject's requests are complex or numerous (other "
        "members' requests are not a ground).",
    )


def _art15_items_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=Art15Item.choices),
        required=False,
        max_length=len(Art15Item.values),
        help_text="Access requests only: the Art 15(1)-(2) UK GDPR items your answer provides (repeat the "
        "field in multipart/form-data). We check the answer against this list and ask for anything it "
        "lacks. Sending it for another right is a 400.",
    )


def _recipients_told_field() -> serializers.CharField:
    return serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=4000,
        help_text="Required for an erasure (Art 19 UK GDPR): the recipients the data was disclosed to, each "
        "told of the erasure, or a statement that there were none.",
    )


class FulfilInputSerializer(serializers.Serializer):
    files = _files_field("The data: one or more files, or a ZIP (multipart/form-data only).")
    note = serializers.CharField(required=False, allow_blank=True, max_length=4000)
    art15_items = _art15_items_field()
    recipients_told = _recipients_told_field()

    def validate_files(self, files) -> list[Upload]:
        return _checked_uploads(files)


class FulfilJsonInputSerializer(serializers.Serializer):
    """Fulfilment with nothing to upload (for example an erasure done)."""

    note = serializers.CharField(required=False, allow_blank=True, max_length=4000)
    art15_items = _art15_items_field()
    recipients_told = _recipients_told_field()


class NoDataInputSerializer(serializers.Serializer):
    searches = serializers.CharField(
        max_length=4000,
        help_text="What you searched, and under which identifiers (Art 15(1A) UK GDPR: a reasonable and "
        "proportionate search). The member sees it.",
    )


class RefuseInputSerializer(serializers.Serializer):
    ground = serializers.ChoiceField(
        choices=[(code, RefusalGround(code).label) for code in GROUNDS],
        help_text="Only the grounds the law gives for the request's right are accepted (see each request's "
        "`refusal_grounds`): e.g. never compelling legitimate grounds against an access request.",
    )
    reasons = serializers.CharField(
        max_length=8000, help_text="Art 12(4) UK GDPR: a controller that does not act must say why."
    )


class PartiallyFulfilJsonInputSerializer(RefuseInputSerializer):
    """Partial fulfilment with nothing to upload."""

    art15_items = _art15_items_field()


class PartiallyFulfilInputSerializer(RefuseInputSerializer):
    files = _files_field("The data you are providing (multipart/form-data only).")
    art15_items = _art15_items_field()

    def validate_files(self, files) -> list[Upload]:
        return _checked_uploads(files)
