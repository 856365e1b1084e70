"""Wire and domain models shared by ingest and query."""

from schemas.errors import ApiError
from schemas.tenancy import DEFAULT_TENANT_ID, Tenant

__all__ = ["DEFAULT_TENANT_ID", "ApiError", "Tenant"]
