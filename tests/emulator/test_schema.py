"""Every response the emulator sends validates against the XSD in the WSDL that bingads ships."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import bingads
import pytest
import xmlschema
from suds import WebFault

from include.msads_emulator.testing import use_tenant
from tests.emulator.support import ago, conversion, upload
from tests.emulator.test_goals import add, offline_goal

PROXIES = Path(bingads.__file__).parent / "v13" / "proxies" / "production"
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"


def wsdl_schema(name: str) -> xmlschema.XMLSchema:
    """The WSDL's embedded schemas as one XSD set (they import each other by namespace)."""
    text = (PROXIES / name).read_text(encoding="utf-8")
    root = re.search(r"<wsdl:definitions\b[^>]*>", text).group(0)
    inherited = dict(re.findall(r'xmlns:(\w+)="([^"]*)"', root))
    sources = []
    for m in re.finditer(r"<xs:schema\b([^>]*)>(.*?)</xs:schema>", text, re.S):
        own = dict(re.findall(r'xmlns:(\w+)="([^"]*)"', m.group(1)))
        extra = "".join(f' xmlns:{p}="{u}"' for p, u in inherited.items() if p not in own)
        sources.append(f"<xs:schema{m.group(1)}{extra}>{m.group(2)}</xs:schema>")
    return xmlschema.XMLSchema(sources)


@pytest.fixture(scope="module")
def schemas() -> dict[str, xmlschema.XMLSchema]:
    return {"campaign": wsdl_schema("campaignmanagement_service.xml"),
            "customer": wsdl_schema("customermanagement_service.xml")}


def _inner(text: str, tag: str) -> str:
    return re.search(rf"<{tag}>(.*)</{tag}>", text, re.S).group(1)


def check_envelope(text: str, schema: xmlschema.XMLSchema) -> str:
    """Validate one response; returns what it was (the body or fault detail element name)."""
    envelope = ET.fromstring(text)
    body = envelope.find(f"{SOAP}Body")
    assert body is not None and len(body) == 1
    fault = body.find(f"{SOAP}Fault")
    if fault is None:
        header = envelope.find(f"{SOAP}Header")
        assert [c.tag.rsplit("}", 1)[1] for c in header] == ["TrackingId"]
        schema.validate(_inner(text, "s:Header"))
        inner = _inner(text, "s:Body")
        schema.validate(inner)
        return body[0].tag.rsplit("}", 1)[1]
    assert [c.tag for c in fault] == ["faultcode", "faultstring", "detail"]
    detail = fault.find("detail")[0]
    name = detail.tag.rsplit("}", 1)[1]
    if name == "ExceptionDetail":
        # WCF's own fault for messages it cannot read; not part of the WSDL, and suds reads
        # fault details untyped, so the SDK raises WebFault with it like the live service.
        return name
    schema.validate(_inner(text, "detail"))
    return name


def exercise_campaign(emu, cm, tenant) -> None:
    """Call every Campaign Management path that produces a distinct response shape."""
    admin = emu.admin
    click = admin.issue_click(tenant.account_id, click_time={"ago": 7200})
    when = ago(emu, hours=1)
    admin.create_goal("Customer goal", customer_id=tenant.customer_id, revenue_type="NoValue",
                      revenue_value=None, view_through_window_minutes=60, category="Contact")
    cm.GetConversionGoalsByIds(ConversionGoalTypes="OfflineConversion")
    cm.GetConversionGoalsByIds(
        ConversionGoalTypes="OfflineConversion Url",
        ReturnAdditionalFields=" ".join(sorted(
            "ViewThroughConversionWindowInMinutes IsExternallyAttributed GoalCategory "
            "InactiveDueToTagUnavailable AttributionModelType IsEnhancedConversionsEnabled "
            "IsAutoGoal DataDrivenAttribute ApplicationDownloadGoal".split())))
    cm.GetConversionGoalsByIds(ConversionGoalIds={"long": [1, tenant.goal_id]},
                               ConversionGoalTypes="OfflineConversion")
    cm.GetConversionGoalsByIds(ConversionGoalTypes="Event")
    add(cm, offline_goal(cm, Name="New"), offline_goal(cm, Name="New"))
    add(cm, offline_goal(cm, Name="Also new", Scope="Customer", CurrencyCode="EUR"))
    upload(cm, [conversion(tenant, when, MicrosoftClickId=click),
                conversion(tenant, when, MicrosoftClickId="0123456789abcdef0123456789abcdef",
                           HashedEmailAddress="not hashed", ExternalAttributionCredit=2)])
    admin.add_fault("batch_error", code=5604, body_contains=click, as_fault=True)
    with pytest.raises(WebFault):
        upload(cm, [conversion(tenant, when, MicrosoftClickId=click)])
    upload(cm, [conversion(tenant, when, MicrosoftClickId=click),
                conversion(tenant, when, ConversionName="No", MicrosoftClickId=click),
                conversion(tenant, when, MicrosoftClickId=click, ConversionValue=-1)])
    cm.ApplyOfflineConversionAdjustments(OfflineConversionAdjustments={
        "OfflineConversionAdjustment": [
            {"AdjustmentTime": ago(emu, minutes=5).isoformat(), "AdjustmentType": "Retract",
             "ConversionName": tenant.goal_name, "ConversionTime": when.isoformat(),
             "MicrosoftClickId": click},
            {"AdjustmentType": "Nope", "ConversionName": tenant.goal_name,
             "ConversionTime": when.isoformat(), "MicrosoftClickId": click}]})
    faults = [
        lambda: upload(cm, [conversion(tenant, when)] * 1001),
        lambda: cm.ApplyOfflineConversions(OfflineConversions={"OfflineConversion": []}),
        lambda: cm.GetConversionGoalsByIds(ConversionGoalIds=None),
        lambda: add(cm, cm.factory.create("OfflineConversionGoal")),
        lambda: cm.GetCampaignsByAccountId(AccountId=tenant.account_id),
    ]
    for call in faults:
        with pytest.raises(WebFault):
            call()
    for kind, code in (("throttle", None), ("internal_error", None), ("operation_error", 5612),
                       ("adapi_error", 303), ("deserialization", None)):
        admin.add_fault(kind, code=code)
        with pytest.raises(WebFault):
            cm.GetConversionGoalsByIds(ConversionGoalTypes="OfflineConversion")
    for overrides in ({"access_token": "nope"}, {"developer_token": "nope"},
                      {"account_id": 1}, {"customer_id": 1}):
        use_tenant(cm, tenant, **overrides)
        with pytest.raises(WebFault):
            cm.GetConversionGoalsByIds(ConversionGoalTypes="OfflineConversion")
    use_tenant(cm, tenant)
    cm.authorization_data.account_id = None
    with pytest.raises(WebFault):
        cm.GetConversionGoalsByIds(ConversionGoalTypes="OfflineConversion")
    use_tenant(cm, tenant)
    emu.admin.advance(3600)
    with pytest.raises(WebFault):
        cm.GetConversionGoalsByIds(ConversionGoalTypes="OfflineConversion")


def exercise_customer(emu, cust, tenant) -> None:
    admin = emu.admin
    second = admin.create_account(tenant.customer_id, "Second", status="Paused", currency="EUR")
    cust.GetUser(UserId=None)
    cust.GetAccountsInfo(CustomerId=tenant.customer_id, OnlyParentAccounts=False)
    cust.SearchAccounts(Predicates={"Predicate": [
        {"Field": "UserId", "Operator": "Equals", "Value": tenant.user_id}]},
        PageInfo={"Index": 0, "Size": 10})
    cust.SearchAccounts(Predicates={"Predicate": [
        {"Field": "AccountName", "Operator": "Equals", "Value": "nothing"}]},
        PageInfo={"Index": 0, "Size": 10})
    user = admin.create_user("restricted@example.com", access=[
        {"customer_id": tenant.customer_id, "account_ids": [second["id"]]}])
    use_tenant(cust, tenant, access_token=admin.issue_access_token(user["id"]))
    cust.GetUser(UserId=None)
    with pytest.raises(WebFault):
        cust.SearchAccounts(Predicates={"Predicate": [
            {"Field": "Budget", "Operator": "Equals", "Value": "1"}]},
            PageInfo={"Index": 0, "Size": 10})
    with pytest.raises(WebFault):
        cust.GetAccountsInfo(CustomerId=1, OnlyParentAccounts=False)
    use_tenant(cust, tenant, access_token="nope")
    with pytest.raises(WebFault):
        cust.GetUser(UserId=None)


def test_every_response_validates_against_the_bundled_wsdl(emu, cm, cust, tenant, schemas):
    exercise_campaign(emu, cm, tenant)
    emu.admin.set_clock(offset_seconds=0)
    use_tenant(cm, tenant)
    exercise_customer(emu, cust, tenant)
    seen: dict[str, set[str]] = {"campaign": set(), "customer": set()}
    for row in emu.admin.requests():
        if row["service"] in seen and row["response"]:
            seen[row["service"]].add(check_envelope(row["response"], schemas[row["service"]]))
    assert seen["campaign"] == {
        "GetConversionGoalsByIdsResponse", "AddConversionGoalsResponse",
        "ApplyOfflineConversionsResponse", "ApplyOfflineConversionAdjustmentsResponse",
        "AdApiFaultDetail", "ApiFaultDetail", "ExceptionDetail"}
    assert seen["customer"] == {"GetUserResponse", "GetAccountsInfoResponse",
                                "SearchAccountsResponse", "AdApiFaultDetail", "ApiFault"}


def test_an_operation_the_emulator_does_not_implement_says_so(cm, tenant):
    with pytest.raises(WebFault) as caught:
        cm.GetCampaignsByAccountId(AccountId=tenant.account_id)
    assert caught.value.fault.faultcode == "a:ActionNotSupported"
    assert "ApplyOfflineConversions" in caught.value.fault.faultstring
