"""intakeq-partner: the asyncio client for the IntakeQ Partner API."""

from ._budgets import Rate, RateLimits
from ._constants import VERSION as __version__
from ._convert import to_dict
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    IntakeQError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RateLimiterUnavailableError,
    ResponseTooLargeError,
    ResponseValidationError,
    ServerError,
)
from ._generated.models import (
    Assistant,
    ConsentForm,
    EphemeralToken,
    FormTemplate,
    Intake,
    Practice,
    Practitioner,
    Question,
)
from ._keystore import KeyStore
from ._logs import configure_from_env as _configure_logging
from .events import (
    CallFinished,
    CallInfo,
    CallStarted,
    Event,
    Exchange,
    Hook,
    KeyFetched,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    Waiting,
    hook_for,
    record_calls,
)
from .partner import PartnerClient
from .practice import PracticeClient
from .tokens import IQ_LOGOUT, SSO_PATHS, FormToken, SsoPath, sso_url

__all__ = [
    "IQ_LOGOUT",
    "SSO_PATHS",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Assistant",
    "AuthenticationError",
    "BadRequestError",
    "CallFinished",
    "CallInfo",
    "CallStarted",
    "ClientClosedError",
    "ConflictError",
    "ConsentForm",
    "EphemeralToken",
    "Event",
    "Exchange",
    "FormTemplate",
    "FormToken",
    "Hook",
    "Intake",
    "IntakeQError",
    "InvalidRequestError",
    "KeyFetched",
    "KeyStore",
    "NotFoundError",
    "PartnerClient",
    "PermissionDeniedError",
    "Practice",
    "PracticeClient",
    "Practitioner",
    "Question",
    "Rate",
    "RateLimitError",
    "RateLimiterUnavailableError",
    "RateLimits",
    "RequestSent",
    "ResponseReceived",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryScheduled",
    "ServerError",
    "SsoPath",
    "Waiting",
    "__version__",
    "hook_for",
    "record_calls",
    "sso_url",
    "to_dict",
]

_configure_logging()  # $INTAKEQ_LOG
