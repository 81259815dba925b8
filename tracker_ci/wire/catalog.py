"""The service catalog in upstream's wire shape (``proto/catalog/v1alpha1/catalog.proto``).

Upstream's UI sends snake_case bodies (``dependencies_out``, ``used_deliverables``); answers
are camelCase like every other answer, which the UI reads too. Two fields are the
exception: the SLA's ``uptime_percentage`` and ``response_time_ms`` are protobuf wrappers
that the UI reads as a plain value only under their snake_case names, so they are written
under those names. Enums are read by name or number; several of the catalog's enums have
gaps in their numbers (``groovy = 15``), so their numbers come from ``NUMBERS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import AliasChoices, BeforeValidator, Field

from tracker_ci.wire.base import (
    BUILT_ON_FIRST_USE,
    Flag,
    Text,
    TextList,
    Timestamp,
    WholeNumber,
    WireModel,
    new_list,
    wire_enum_field,
)
from tracker_ci.wire.vocabulary import WireEnum

__all__ = [
    "DELIVERABLE_TYPES",
    "Catalog",
    "CatalogListResponse",
    "CatalogResponse",
    "CatalogType",
    "CommunicationChannel",
    "CommunicationType",
    "ComplianceSummary",
    "DashboardLink",
    "DashboardType",
    "DeleteCatalogResponse",
    "DeliverableComplianceStats",
    "DeliverableUsage",
    "InfrastructureResource",
    "InfrastructureType",
    "Language",
    "Platform",
    "ProjectCompliance",
    "Sla",
    "SlaLevel",
    "UpdateDependenciesRequest",
    "UpdateVersionsRequest",
    "UsedDeliverable",
    "VersionComplianceResponse",
    "VulnerabilitySource",
    "VulnerabilitySummary",
]


class _NumberedEnum(WireEnum):
    """A wire enum whose protobuf numbers are given in ``NUMBERS`` (they have gaps)."""

    @classmethod
    def numbers(cls) -> dict[int, Self]:
        given = NUMBERS.get(cls.__name__)
        if given is None:
            return super().numbers()
        return {given[member.value]: member for member in cls}

    @property
    def number(self) -> int:
        given = NUMBERS.get(type(self).__name__)
        return super().number if given is None else given[self.value]


class CatalogType(_NumberedEnum):
    """What an entry is: a project, or a deliverable other projects use."""

    TYPE_UNSPECIFIED = "TYPE_UNSPECIFIED"
    module = "module"
    library = "library"
    workflow = "workflow"
    project = "project"
    chart = "chart"
    package = "package"
    container = "container"


class Language(_NumberedEnum):
    """Upstream's ``Languages`` (``javascrypt`` is upstream's own spelling)."""

    LANGUAGES_UNSPECIFIED = "LANGUAGES_UNSPECIFIED"
    golang = "golang"
    kotlin = "kotlin"
    java = "java"
    terraform = "terraform"
    helm = "helm"
    javascript = "javascript"
    yaml = "yaml"
    docker = "docker"
    python = "python"
    php = "php"
    rust = "rust"
    typescript = "typescript"
    javascrypt = "javascrypt"
    groovy = "groovy"


class SlaLevel(_NumberedEnum):
    SLA_LEVEL_UNSPECIFIED = "SLA_LEVEL_UNSPECIFIED"
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


class Platform(_NumberedEnum):
    PLATFORM_UNSPECIFIED = "PLATFORM_UNSPECIFIED"
    ec2 = "ec2"
    lambda_ = "lambda"
    kubernetes = "kubernetes"
    ecs = "ecs"
    fargate = "fargate"
    cloud_run = "cloud_run"
    app_service = "app_service"
    step_functions = "step_functions"
    event_bridge = "event_bridge"
    rds = "rds"
    dynamodb = "dynamodb"
    s3 = "s3"
    cloudfront = "cloudfront"
    api_gateway = "api_gateway"
    cloudwatch = "cloudwatch"
    on_premise = "on_premise"
    hybrid = "hybrid"
    multi_cloud = "multi_cloud"


class InfrastructureType(_NumberedEnum):
    INFRASTRUCTURE_TYPE_UNSPECIFIED = "INFRASTRUCTURE_TYPE_UNSPECIFIED"
    database_rds = "database_rds"
    database_dynamodb = "database_dynamodb"
    database_mongodb = "database_mongodb"
    database_postgresql = "database_postgresql"
    database_mysql = "database_mysql"
    database_redis = "database_redis"
    database_elasticsearch = "database_elasticsearch"
    storage_s3 = "storage_s3"
    storage_efs = "storage_efs"
    storage_ebs = "storage_ebs"
    network_load_balancer = "network_load_balancer"
    network_api_gateway = "network_api_gateway"
    network_cdn = "network_cdn"
    network_vpc = "network_vpc"
    network_nat_gateway = "network_nat_gateway"
    messaging_sqs = "messaging_sqs"
    messaging_sns = "messaging_sns"
    messaging_kafka = "messaging_kafka"
    messaging_rabbitmq = "messaging_rabbitmq"
    cache_redis = "cache_redis"
    cache_memcached = "cache_memcached"
    cache_cloudfront = "cache_cloudfront"
    security_waf = "security_waf"
    security_secrets_manager = "security_secrets_manager"
    security_kms = "security_kms"
    monitoring_cloudwatch = "monitoring_cloudwatch"
    monitoring_prometheus = "monitoring_prometheus"
    monitoring_grafana = "monitoring_grafana"
    other_custom = "other_custom"


class CommunicationType(_NumberedEnum):
    COMMUNICATION_TYPE_UNSPECIFIED = "COMMUNICATION_TYPE_UNSPECIFIED"
    slack = "slack"
    teams = "teams"
    email = "email"
    discord = "discord"
    mattermost = "mattermost"
    telegram = "telegram"


class DashboardType(_NumberedEnum):
    DASHBOARD_TYPE_UNSPECIFIED = "DASHBOARD_TYPE_UNSPECIFIED"
    grafana = "grafana"
    datadog = "datadog"
    newrelic = "newrelic"
    prometheus = "prometheus"
    kibana = "kibana"
    splunk = "splunk"
    dynatrace = "dynatrace"
    appdynamics = "appdynamics"
    custom = "custom"


def _infrastructure_numbers() -> dict[str, int]:
    groups = {
        0: ["INFRASTRUCTURE_TYPE_UNSPECIFIED"],
        1: [
            "database_rds",
            "database_dynamodb",
            "database_mongodb",
            "database_postgresql",
            "database_mysql",
            "database_redis",
            "database_elasticsearch",
        ],
        10: ["storage_s3", "storage_efs", "storage_ebs"],
        20: [
            "network_load_balancer",
            "network_api_gateway",
            "network_cdn",
            "network_vpc",
            "network_nat_gateway",
        ],
        30: ["messaging_sqs", "messaging_sns", "messaging_kafka", "messaging_rabbitmq"],
        40: ["cache_redis", "cache_memcached", "cache_cloudfront"],
        50: ["security_waf", "security_secrets_manager", "security_kms"],
        60: ["monitoring_cloudwatch", "monitoring_prometheus", "monitoring_grafana"],
        99: ["other_custom"],
    }
    return {name: first + i for first, names in groups.items() for i, name in enumerate(names)}


#: The protobuf numbers of the enums whose numbers are not their positions.
NUMBERS: dict[str, dict[str, int]] = {
    # groovy = 15: upstream's proto has no 14.
    "Language": {m.value: (15 if m.value == "groovy" else i) for i, m in enumerate(Language)},
    "InfrastructureType": _infrastructure_numbers(),
}

#: The deliverable types whose versions projects are checked against (upstream's default).
DELIVERABLE_TYPES = (
    CatalogType.package,
    CatalogType.chart,
    CatalogType.container,
    CatalogType.module,
)

if TYPE_CHECKING:
    CatalogTypeField = CatalogType
    LanguageField = Language
    SlaLevelField = SlaLevel
    PlatformField = Platform
    InfrastructureTypeField = InfrastructureType
    CommunicationTypeField = CommunicationType
    DashboardTypeField = DashboardType
else:
    CatalogTypeField = wire_enum_field(CatalogType)
    LanguageField = wire_enum_field(Language)
    SlaLevelField = wire_enum_field(SlaLevel)
    PlatformField = wire_enum_field(Platform)
    InfrastructureTypeField = wire_enum_field(InfrastructureType)
    CommunicationTypeField = wire_enum_field(CommunicationType)
    DashboardTypeField = wire_enum_field(DashboardType)


def _unwrap(value: Any) -> Any:
    # A protobuf wrapper may arrive as {"value": x} (as some clients write it) or as x.
    if isinstance(value, dict) and set(value) <= {"value"}:
        return value.get("value")
    return value


Percentage = Annotated[float, Field(ge=0, le=100)]
Milliseconds = Annotated[int, Field(ge=0)]


class Sla(WireModel):
    """A service level; the two wrappers are written snake_case (see the module's doc)."""

    level: SlaLevelField = SlaLevel.SLA_LEVEL_UNSPECIFIED  # type: ignore[valid-type]
    uptime_percentage: Annotated[Percentage | None, BeforeValidator(_unwrap)] = Field(
        default=None,
        validation_alias=AliasChoices("uptime_percentage", "uptimePercentage"),
        serialization_alias="uptime_percentage",
    )
    response_time_ms: Annotated[Milliseconds | None, BeforeValidator(_unwrap)] = Field(
        default=None,
        validation_alias=AliasChoices("response_time_ms", "responseTimeMs"),
        serialization_alias="response_time_ms",
    )
    description: Text = ""


class UsedDeliverable(WireModel):
    """A deliverable a project uses, and the version it uses."""

    name: Text = ""
    type: CatalogTypeField = CatalogType.TYPE_UNSPECIFIED  # type: ignore[valid-type]
    version_used: Text = ""
    description: Text = ""


class CommunicationChannel(WireModel):
    type: CommunicationTypeField = CommunicationType.COMMUNICATION_TYPE_UNSPECIFIED  # type: ignore[valid-type]
    name: Text = ""
    url: Text = ""
    description: Text = ""


class DashboardLink(WireModel):
    type: DashboardTypeField = DashboardType.DASHBOARD_TYPE_UNSPECIFIED  # type: ignore[valid-type]
    name: Text = ""
    url: Text = ""
    description: Text = ""


class VulnerabilitySource(WireModel):
    name: Text = ""
    type: Text = ""
    url: Text = ""
    critical_count: WholeNumber = 0
    high_count: WholeNumber = 0
    medium_count: WholeNumber = 0
    low_count: WholeNumber = 0
    info_count: WholeNumber = 0
    total_count: WholeNumber = 0
    last_scan: Timestamp | None = None
    scan_version: Text = ""
    description: Text = ""


class VulnerabilitySummary(WireModel):
    critical_count: WholeNumber = 0
    high_count: WholeNumber = 0
    medium_count: WholeNumber = 0
    low_count: WholeNumber = 0
    info_count: WholeNumber = 0
    total_count: WholeNumber = 0
    last_updated: Timestamp | None = None
    sources: list[VulnerabilitySource] = Field(default_factory=new_list)


class InfrastructureResource(WireModel):
    id: Text = ""
    name: Text = ""
    type: InfrastructureTypeField = InfrastructureType.INFRASTRUCTURE_TYPE_UNSPECIFIED  # type: ignore[valid-type]
    description: Text = ""
    provider: Text = ""
    region: Text = ""
    #: A connection endpoint (``postgres://...``), not necessarily a web link.
    endpoint: Text = ""
    metadata: dict[str, Text] = Field(default_factory=dict)
    connected_services: TextList = Field(default_factory=new_list)


class Catalog(WireModel):
    """A catalog entry: the body of ``PUT /catalog`` and the entry every answer holds.

    On ``PUT /catalog`` the three version fields are ignored (``PUT
    /catalog/{name}/versions`` sets them), and so are ``createdAt`` / ``updatedAt``.
    """

    name: Text = ""
    type: CatalogTypeField = CatalogType.TYPE_UNSPECIFIED  # type: ignore[valid-type]
    languages: LanguageField = Language.LANGUAGES_UNSPECIFIED  # type: ignore[valid-type]
    owner: Text = ""
    version: Text = ""
    link: Text = ""
    description: Text = ""
    repository: Text = ""
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    #: The services this one depends on (upstream's "upstream dependencies").
    dependencies_in: TextList = Field(default_factory=new_list)
    #: The services that depend on this one.
    dependencies_out: TextList = Field(default_factory=new_list)
    sla: Sla | None = None
    platform: PlatformField = Platform.PLATFORM_UNSPECIFIED  # type: ignore[valid-type]
    available_versions: TextList = Field(default_factory=new_list)
    latest_version: Text = ""
    reference_version: Text = ""
    used_deliverables: list[UsedDeliverable] = Field(default_factory=new_list)
    communication_channels: list[CommunicationChannel] = Field(default_factory=new_list)
    dashboard_links: list[DashboardLink] = Field(default_factory=new_list)
    vulnerability_summary: VulnerabilitySummary | None = None
    infrastructure_resources: list[InfrastructureResource] = Field(default_factory=new_list)
    #: Extension (Backstage's ``spec.lifecycle``: experimental, production, deprecated...);
    #: an upstream client ignores it.
    lifecycle: Text = ""
    #: Extension: the service's environment names, which its writes may use from the first
    #: one on (docs/environments.md: a new name close to a used one is otherwise refused).
    environments: TextList = Field(default_factory=new_list)


class CatalogResponse(WireModel):
    """``PUT /catalog``, ``GET /catalog?name=``, and the versions and dependencies PUTs."""

    model_config = BUILT_ON_FIRST_USE

    catalog: Catalog | None = None


class CatalogListResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    catalogs: list[Catalog] = Field(default_factory=new_list)
    total_count: int = 0


class DeleteCatalogResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    message: Text = ""
    name: Text = ""


class UpdateVersionsRequest(WireModel):
    """Body of ``PUT /catalog/{name}/versions`` (the path names the entry)."""

    name: Text = ""
    available_versions: TextList = Field(default_factory=new_list)
    latest_version: Text = ""
    reference_version: Text = ""


class UpdateDependenciesRequest(WireModel):
    """Body of ``PUT /catalog/{name}/dependencies`` (the path names the entry)."""

    name: Text = ""
    dependencies_in: TextList = Field(default_factory=new_list)
    dependencies_out: TextList = Field(default_factory=new_list)


class DeliverableUsage(WireModel):
    name: Text = ""
    type: CatalogTypeField = CatalogType.TYPE_UNSPECIFIED  # type: ignore[valid-type]
    current_version: Text = ""
    latest_version: Text = ""
    reference_version: Text = ""
    is_outdated: Flag = False
    is_latest: Flag = False


class ProjectCompliance(WireModel):
    project_name: Text = ""
    deliverables: list[DeliverableUsage] = Field(default_factory=new_list)
    outdated_count: int = 0
    total_count: int = 0
    compliance_percentage: float = 0.0


class DeliverableComplianceStats(WireModel):
    name: Text = ""
    type: CatalogTypeField = CatalogType.TYPE_UNSPECIFIED  # type: ignore[valid-type]
    projects_using: int = 0
    projects_outdated: int = 0
    latest_version: Text = ""
    reference_version: Text = ""


class ComplianceSummary(WireModel):
    total_projects: int = 0
    compliant_projects: int = 0
    non_compliant_projects: int = 0
    overall_compliance_percentage: float = 0.0
    deliverable_stats: list[DeliverableComplianceStats] = Field(default_factory=new_list)


class VersionComplianceResponse(WireModel):
    """``GET /catalog/version-compliance``: each project's deliverables against their
    reference versions, and a summary."""

    model_config = BUILT_ON_FIRST_USE

    projects: list[ProjectCompliance] = Field(default_factory=new_list)
    summary: ComplianceSummary | None = None
