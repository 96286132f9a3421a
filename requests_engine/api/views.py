"""The controller API (`/api/v1/`): a controller contact lists and reads the requests addressed to its
controller and answers them, one POST action per legal step.

Every view loads requests through `requests_for`, so another controller's request is a 404 like one that
does not exist. Each action validates its input with its own serializer (400 with field errors), then
calls one service; a refusal from the service is then about the request's state (409).
"""

from __future__ import annotations

import html
import unicodedata
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation, TooManyFilesSent
from django.db.models import F, Prefetch, Q, QuerySet
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, parsers, permissions, serializers
from rest_framework.metadata import SimpleMetadata
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from communities.models import Authority, Identifier
from core.audit import Actor
from core.downloads import download
from requests_engine.api import idempotency
from requests_engine.api.authentication import (
    ControllerPrincipal,
    ControllerRateThrottle,
    ControllerTokenAuthentication,
)
from requests_engine.api.serializers import (
    REFERENCE_PATTERN,
    VALIDATION_ERROR_SCHEMA,
    AcknowledgeInputSerializer,
    ErrorSerializer,
    ExtendInputSerializer,
    FulfilInputSerializer,
    FulfilJsonInputSerializer,
    NoDataInputSerializer,
    PartiallyFulfilInputSerializer,
    PartiallyFulfilJsonInputSerializer,
    RefuseInputSerializer,
    RequestDetailSerializer,
    RequestFilterSerializer,
    RequestInformationInputSerializer,
    RequestSerializer,
)
from requests_engine.exceptions import (
    Art15ItemsRefused,
    RequestEngineError,
    StatementMissing,
    UploadRefused,
)
from requests_engine.grounds import request_ground_problem
from requests_engine.letters import needed_kinds
from requests_engine.models import Controller, DataRightsRequest, IdentityDocument, ReceivedFile, RequestEvent
from requests_engine.responses import answers, identity_documents
from requests_engine.responses.files import files_removed_on_failure

# -- reads ---------------------------------------------------------------------------------------------------


def requests_for(controller_id: int) -> QuerySet[DataRightsRequest]:
    """The only way into requests here: a controller's own, once sent to it."""
    return answers.requests_for_controller(controller_id)


def _with_related(requests: QuerySet[DataRightsRequest], controller_id: int) -> QuerySet[DataRightsRequest]:
    # One query for the rows and their campaign, member and mandate, one for the identifiers of the page's
    # members: the identifiers given for this controller, or for every controller.
    # Ordered by its own columns: the model's default ordering would join member, community and controller.
    # General identifiers only of the kinds this controller asks for: the letters' disclosure rule.
    controller = Controller.objects.only("required_identifiers").get(pk=controller_id)
    identifiers = Identifier.objects.filter(
        Q(controller_id=controller_id) | Q(controller__isnull=True, kind__in=needed_kinds(controller))
    ).order_by("-controller_id", "kind", "pk")
    authorities = Authority.objects.filter(controller_id=controller_id).exclude(pdf="")
    return (
        requests.select_related("campaign", "member", "mandate", "controller")
        .defer("mandate__text", "mandate__signed_user_agent", "campaign__purpose", "campaign__member_note")
        .prefetch_related(
            Prefetch("member__identifiers", queryset=identifiers, to_attr="api_identifiers"),
            Prefetch("mandate__authorities", queryset=authorities, to_attr="api_authorities"),
        )
    )


# -- plumbing shared by every view ---------------------------------------------------------------------------


class _NamesCheckedMultiPartParser(DjangoMultiPartParser):
    """Django silently strips control characters from an uploaded file's name (and drops a file whose name
    is then empty). A name with control characters is refused instead, like any other refused upload."""

    def sanitize_file_name(self, file_name: str) -> str | None:
        if any(unicodedata.category(ch) == "Cc" for ch in html.unescape(file_name)):
            raise exceptions.ValidationError(
                {"files": ["A file name contains control characters; rename the file and upload it again."]}
            )
        return super().sanitize_file_name(file_name)


class UploadParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context["request"]
        meta = {**request.META, "CONTENT_TYPE": media_type}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            parser = _NamesCheckedMultiPartParser(meta, stream, request.upload_handlers, encoding)
            data, files = parser.parse()
        except TooManyFilesSent:
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
            message = f"Send at most {limit} files at once, or put them in one ZIP."
            raise exceptions.ValidationError({"files": [message]}) from None
        except (MultiPartParserError, SuspiciousOperation) as error:
            # Django's own limits (fields, sizes) answer 400 in JSON here, like every other API error.
            raise exceptions.ParseError(f"Multipart form parse error: {error}") from None
        return parsers.DataAndFiles(data, files)


# What RequestSerializer reads (and the `extend` action's condition): a list row loads nothing else.
LIST_COLUMNS = (
    "reference",
    "right",
    "state",
    "received_on",
    "due_on",
    "clock_paused",
    "extension_months",
    "info_kind",
    "info_question",
    "info_requested_on",
    "campaign__reference",
    "member__reference",
    "member__full_name",
    "mandate__reference",
    "mandate__state",
    "controller__name",
)


def _whole_number(given: str, *, at_most: int | None = None) -> bool:
    """ASCII digits only: str.isdigit() also takes "²", which int() refuses."""
    if not (given.isascii() and given.isdigit()):
        return False
    return 1 <= int(given) and (at_most is None or int(given) <= at_most)


class RequestPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    last_page_strings = ()  # the schema says a page is a number: "last" is not one

    def get_page_size(self, request) -> int:
        # DRF falls back to the default for a page size that is not a number; the schema says an integer
        # from 1 to 200, so anything else is refused rather than silently replaced.
        given = request.query_params.get(self.page_size_query_param)
        if given is not None and not _whole_number(given, at_most=self.max_page_size):
            raise exceptions.ValidationError(
                {"page_size": [f"Give a whole number from 1 to {self.max_page_size}."]}
            )
        return super().get_page_size(request) or self.page_size

    def get_page_number(self, request, paginator) -> int | str:
        # DRF reads an empty page as the first; the schema says an integer from 1, so it is refused too.
        given = request.query_params.get(self.page_query_param)
        if given is not None and not _whole_number(given):
            raise exceptions.ValidationError({"page": ["Give a whole number from 1."]})
        return super().get_page_number(request, paginator)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page_size})
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update({"minimum": 1})
        return parameters


class ControllerAPIView(generics.GenericAPIView):
    authentication_classes = [ControllerTokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [ControllerRateThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes = [parsers.JSONParser]

    @property
    def principal(self) -> ControllerPrincipal:
        return self.request.user  # type: ignore[return-value]

    def get_queryset(self) -> QuerySet[DataRightsRequest]:
        return requests_for(self.principal.controller_id)

    def get_object(self) -> DataRightsRequest:
        found = self.get_queryset().filter(reference=self.kwargs["reference"]).first()
        if found is None:
            raise exceptions.NotFound("There is no such request.")
        return found

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "today": timezone.localdate()}

    def detail(self, request_id: int) -> dict[str, Any]:
        """The request as it is now, for an action's answer."""
        controller_id = self.principal.controller_id
        found = _with_history(requests_for(controller_id), controller_id).get(pk=request_id)
        return RequestDetailSerializer(found, context=self.get_serializer_context()).data


def _with_history(requests: QuerySet[DataRightsRequest], controller_id: int) -> QuerySet[DataRightsRequest]:
    return _with_related(requests, controller_id).prefetch_related(
        Prefetch("events", queryset=RequestEvent.objects.order_by("seq")),
        Prefetch("files", queryset=ReceivedFile.objects.order_by("received_at", "pk")),
        Prefetch("identity_documents", queryset=IdentityDocument.objects.select_related("request")),
    )


@csrf_exempt  # any method: a POST to a wrong address is a 404 too, not a CSRF failure
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Anything else under /api/v1/ is a JSON 404 too, not an HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)


# -- schema pieces -------------------------------------------------------------------------------------------

REFERENCE_PARAMETER = OpenApiParameter(
    "reference",
    {"type": "string", "pattern": f"^{REFERENCE_PATTERN}$"},
    OpenApiParameter.PATH,
    required=True,
    description="The request's reference, as quoted in our letters.",
)
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    idempotency.HEADER,
    {
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.MAX_KEY_LENGTH,
        "pattern": idempotency.KEY_PATTERN,
    },
    OpenApiParameter.HEADER,
    description="Send a new unique key (a UUID) with each action. A retry with the same key and the same "
    "request gets the first answer again (with `Idempotent-Replayed: true`) without acting twice; the same "
    "key with a different request is a 422.",
)
ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No token, or an unknown or revoked one."),
    404: OpenApiResponse(ErrorSerializer, description="No such request for your controller."),
    429: OpenApiResponse(ErrorSerializer, description="Too many requests: wait as Retry-After says."),
}
ACTION_ERRORS = {
    400: OpenApiResponse(VALIDATION_ERROR_SCHEMA, description="Invalid input: the errors name the fields."),
    **ERRORS,
    409: OpenApiResponse(ErrorSerializer, description="Not allowed in the request's current state."),
    415: OpenApiResponse(ErrorSerializer, description="A body type this action does not take."),
    422: OpenApiResponse(ErrorSerializer, description="The Idempotency-Key was used for another request."),
}


def action_schema(*, step: str, summary: str, description: str, request: Any) -> Any:
    return extend_schema_view(
        post=extend_schema(
            operation_id=f"requests_{step.replace('-', '_')}",
            summary=summary,
            description=description,
            request=request,
            parameters=[REFERENCE_PARAMETER, IDEMPOTENCY_PARAMETER],
            responses={200: RequestDetailSerializer, **ACTION_ERRORS},
            tags=["actions"],
        )
    )


# -- reads ---------------------------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        operation_id="requests_list",
        summary="List your controller's requests",
        description="Ordered by due date (requests without one last), then by id.",
        parameters=[RequestFilterSerializer],
        responses={
            200: RequestSerializer(many=True),
            400: OpenApiResponse(VALIDATION_ERROR_SCHEMA),
            **ERRORS,
        },
        tags=["requests"],
    )
)
class RequestListView(ControllerAPIView, generics.ListAPIView):
    serializer_class = RequestSerializer
    pagination_class = RequestPagination

    def get_queryset(self) -> QuerySet[DataRightsRequest]:
        filters = RequestFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        requests = super().get_queryset()
        if wanted.get("state"):
            requests = requests.filter(state__in=sorted(wanted["state"]))
        if wanted.get("right"):
            requests = requests.filter(right=wanted["right"])
        if wanted.get("campaign"):
            requests = requests.filter(campaign__reference=wanted["campaign"].strip().upper())
        if wanted.get("due_before"):
            requests = requests.filter(due_on__lte=wanted["due_before"])
        if wanted.get("due_after"):
            requests = requests.filter(due_on__gte=wanted["due_after"])
        # (due_on, id) with NULLS LAST is PostgreSQL's natural ascending order, so an index on
        # (controller, due_on, id) serves the page without a sort.
        return requests.order_by(F("due_on").asc(nulls_last=True), "pk")

    def list(self, request, *args, **kwargs) -> Response:
        # Two steps: the page's ids from the narrow table alone, then those rows with their campaign,
        # member, mandate and identifiers. Joining first would join every one of the controller's
        # requests before the sort could keep fifty.
        ids = self.paginate_queryset(self.get_queryset().values_list("pk", flat=True)) or []
        page = DataRightsRequest.objects.filter(pk__in=ids).order_by()
        rows = _with_related(page, self.principal.controller_id).only(*LIST_COLUMNS)
        by_id = {row.pk: row for row in rows}
        serializer = self.get_serializer([by_id[pk] for pk in ids], many=True)
        return self.get_paginated_response(serializer.data)


@extend_schema_view(
    get=extend_schema(
        operation_id="requests_read",
        summary="Read one request, with its history",
        parameters=[REFERENCE_PARAMETER],
        responses={200: RequestDetailSerializer, **ERRORS},
        tags=["requests"],
    )
)
class RequestDetailView(ControllerAPIView, generics.RetrieveAPIView):
    serializer_class = RequestDetailSerializer

    def get_queryset(self) -> QuerySet[DataRightsRequest]:
        return _with_history(super().get_queryset(), self.principal.controller_id)


@extend_schema_view(
    get=extend_schema(
        operation_id="requests_identity_document",
        summary="Download a document the member uploaded to show who they are",
        description="Only the controller the request was made to can read it; each download is recorded in "
        "the request's history. Deleted 30 days after the request closes.",
        parameters=[REFERENCE_PARAMETER, OpenApiParameter("document_id", int, OpenApiParameter.PATH)],
        responses={(200, "application/octet-stream"): OpenApiResponse(description="The document"), **ERRORS},
        tags=["requests"],
    )
)
class IdentityDocumentView(ControllerAPIView):
    def get(self, request, reference: str, document_id: int) -> HttpResponseBase:
        data_request = self.get_object()
        document = data_request.identity_documents.filter(pk=document_id, deleted_at__isnull=True).first()
        if document is None:
            raise exceptions.NotFound("There is no such document.")
        data = identity_documents.identity_document_view(
            document=document, actor=Actor(Actor.CONTROLLER, str(self.principal.contact.pk))
        )
        return download(data, name=document.original_name, content_type=document.content_type)


# -- actions -------------------------------------------------------------------------------------------------


class ActionMetadata(SimpleMetadata):
    """OPTIONS on an action endpoint describes what its POST takes: the view's input serializer (these views
    have no serializer_class, which DRF's default metadata asks for)."""

    def determine_actions(self, request, view) -> dict[str, Any]:
        return {"POST": self.get_serializer_info(view.input_serializer_class())}


class RequestActionView(ControllerAPIView):
    """POST /requests/<reference>/<step>/: validate with `input_serializer_class`, then `act` (one service
    call), under the Idempotency-Key when one is sent."""

    input_serializer_class: type[serializers.Serializer]
    answer_action: str  # a name in answers.ACTIONS
    metadata_class = ActionMetadata

    def answer(self, data: dict[str, Any]) -> dict[str, Any]:
        """The answer's content, from the validated input, as answers.request_answer takes it."""
        return {}

    def post(self, request, reference: str) -> Response:
        data_request = self.get_object()
        contact_id = self.principal.contact.pk
        key = idempotency.key_from(request)
        request_fingerprint = ""
        if key is not None:
            request_fingerprint = idempotency.fingerprint(request)
            replay = idempotency.stored_response(
                contact_id=contact_id, key=key, request_fingerprint=request_fingerprint
            )
            if replay is not None:
                return replay
        inputs = self.input_serializer_class(data=request.data)
        inputs.is_valid(raise_exception=True)
        ground = inputs.validated_data.get("ground")
        if ground and (problem := request_ground_problem(ground, data_request)):
            # The right is the request's: a ground the law does not give for it is bad input (RULES.md (d)).
            raise exceptions.ValidationError({"ground": [problem]})

        def attempt() -> Response:
            try:
                answers.request_answer(
                    request_id=data_request.pk,
                    action=self.answer_action,
                    actor=Actor(Actor.CONTROLLER, str(contact_id)),
                    **self.answer(inputs.validated_data),
                )
            except UploadRefused as refused:  # the service's own upload check, past the serializer's
                raise exceptions.ValidationError({"files": [str(refused)]}) from None
            except Art15ItemsRefused as refused:
                raise exceptions.ValidationError({"art15_items": [str(refused)]}) from None
            except StatementMissing as missing:
                raise exceptions.ValidationError({missing.field: [str(missing)]}) from None
            except RequestEngineError as error:
                return Response({"detail": str(error)}, status=409)
            return Response(self.detail(data_request.pk))

        # Files stored by an answer are removed if the idempotency record's transaction fails after it.
        with files_removed_on_failure():
            if key is None:
                return attempt()
            return idempotency.run_once(
                contact_id=contact_id, key=key, request_fingerprint=request_fingerprint, attempt=attempt
            )


@action_schema(
    step="acknowledge",
    summary="Acknowledge the request",
    description="Tell the member the request has arrived and is being handled. Allowed while it is sent.",
    request=AcknowledgeInputSerializer,
)
class AcknowledgeView(RequestActionView):
    input_serializer_class = AcknowledgeInputSerializer

    answer_action = "acknowledge"

    def answer(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"note": data.get("note", "")}


@action_schema(
    step="request-information",
    summary="Ask for information",
    description="Ask the member for proof of identity (only where in reasonable doubt), the community for "
    "proof of its authority, or the member to clarify an access request. Identity or authority evidence "
    "restarts the month from its receipt; a clarification stops the clock until the answer (Art 12A).",
    request=RequestInformationInputSerializer,
)
class RequestInformationView(RequestActionView):
    input_serializer_class = RequestInformationInputSerializer

    answer_action = "ask"

    def answer(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"kind": data["kind"], "question": data["question"]}


@action_schema(
    step="extend",
    summary="Extend the deadline",
    description="Once, by one or two further months, with reasons, before the due date (Art 12(3) UK GDPR).",
    request=ExtendInputSerializer,
)
class ExtendView(RequestActionView):
    input_serializer_class = ExtendInputSerializer

    answer_action = "extend"

    def answer(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"months": int(data["months"]), "reasons": data["reason"]}


@action_schema(
    step="fulfil",
    summary="Fulfil the request",
    description="Send the data as multipart/form-data (repeat `files` for several files, or send one ZIP) "
    "with an optional note; or JSON with a note only when there is nothing to send. Files are checked "
    "(size, type sniffed from the content, ZIP safety, names) and stored encrypted; one refused file "
    "refuses the whole upload and nothing is stored. For an access request, `art15_items` says which "
    "Art 15 items the answer provides; for an erasure, `recipients_told` is required (Art 19).",
    request={"multipart/form-data": FulfilInputSerializer, "application/json": FulfilJsonInputSerializer},
)
class FulfilView(RequestActionView):
    input_serializer_class = FulfilInputSerializer
    parser_classes = [parsers.JSONParser, UploadParser]

    answer_action = "fulfil"

    def answer(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "note": data.get("note", ""),
            "recipients_told": data.get("recipients_told", ""),
            **_files_and_items(data),
        }


def _files_and_items(data: dict[str, Any]) -> dict[str, Any]:
    """The uploads, and the Art 15 items when the controller sent them (absent: not declared)."""
    return {"uploads": data.get("files", []), "art15_items": data.get("art15_items")}


@action_schema(
    step="no-data-held",
    summary="Confirm that you hold no personal data of the member",
    description="An answer, not a refusal: Art 15(1) UK GDPR asks you to confirm whether you process the "
    "member's data. Say what you searched (Art 15(1A)).",
    request=NoDataInputSerializer,
)
class NoDataView(RequestActionView):
    input_serializer_class = NoDataInputSerializer

    answer_action = "no_data"

    def answer(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"searches": data["searches"]}


@action_schema(
    step="partially-fulfil",
    summary="Fulfil the request in part",
    description="Send what you can (multipart/form-data, as for fulfil) with the legal ground and reasons "
    "for the rest (Art 12(4) UK GDPR); for an access request, `art15_items` as for fulfil.",
    request={
        "multipart/form-data": PartiallyFulfilInputSerializer,
        "application/json": PartiallyFulfilJsonInputSerializer,
    },
)
class PartiallyFulfilView(RequestActionView):
    input_serializer_class = PartiallyFulfilInputSerializer
    parser_classes = [parsers.JSONParser, UploadParser]

    answer_action = "partially_fulfil"

    def answer(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"ground": data["ground"], "reasons": data["reasons"], **_files_and_items(data)}


@action_schema(
    step="refuse",
    summary="Refuse the request",
    description="Give the legal ground and your reasons. Art 12(4) UK GDPR: the member must be told the "
    "reasons and of the right to complain to the ICO and to seek a judicial remedy.",
    request=RefuseInputSerializer,
)
class RefuseView(RequestActionView):
    input_serializer_class = RefuseInputSerializer

    answer_action = "refuse"

    def answer(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"ground": data["ground"], "reasons": data["reasons"]}
