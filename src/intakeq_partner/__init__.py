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
    "ClientClosedError",
    "ConflictError",
    "ConsentForm",
    "EphemeralToken",
    "FormTemplate",
    "FormToken",
    "Intake",
    "IntakeQError",
    "InvalidRequestError",
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
    "ResponseTooLargeError",
    "ResponseValidationError",
    "ServerError",
    "SsoPath",
    "__version__",
    "sso_url",
    "to_dict",
]
