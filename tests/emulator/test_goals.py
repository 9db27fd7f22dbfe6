"""GetConversionGoalsByIds and AddConversionGoals through Microsoft's REST SDK (msads)."""

from __future__ import annotations

import json

import pytest
from openapi_client.api_client import ApiClient
from openapi_client.exceptions import ApiException
from openapi_client.models.campaign.conversion_goal_revenue import ConversionGoalRevenue
from openapi_client.models.campaign.offline_conversion_goal import OfflineConversionGoal
from pydantic import ValidationError

from include.msads_emulator.testing import http_session
from tests.emulator.support import ago, batch_errors, conversion, fault_codes, fault_of, upload

ADD_PATH = "/CampaignManagement/v13/ConversionGoals"
GET_PATH = "/CampaignManagement/v13/ConversionGoals/QueryByIds"


def offline_goal(**fields) -> OfflineConversionGoal:
    """An OfflineConversionGoal as an SDK user builds it (the model sets Type itself).
    ``revenue_type``, ``revenue_value`` and ``currency_code`` go into Revenue; None leaves a
    member out."""
    revenue = {"type": fields.pop("revenue_type", "VariableValue"),
               "value": fields.pop("revenue_value", 0.0),
               "currency_code": fields.pop("currency_code", "USD")}
    values = {"conversion_window_in_minutes": 43200, "count_type": "All",
              "goal_category": "Purchase", "scope": "Account", "status": "Active",
              "revenue": ConversionGoalRevenue(**{k: v for k, v in revenue.items()
                                                  if v is not None}),
              **fields}
    return OfflineConversionGoal(**{k: v for k, v in values.items() if v is not None})


def add(cm, *goals):
    return cm.AddConversionGoals({"ConversionGoals": list(goals)})


def list_offline(cm, **fields):
    return cm.GetConversionGoalsByIds({"ConversionGoalTypes": "OfflineConversion", **fields})


def as_json(model) -> dict:
    """A model as the SDK writes it on the wire (enums by name)."""
    return ApiClient().sanitize_for_serialization(model)


def post(emu, client, path: str, body) :
    """A JSON body posted past the SDK (which would refuse to build it, or to read the
    answer), with the client's headers."""
    return http_session(emu).post(emu.base_url + path, json=body, headers=client.headers,
                                  timeout=30)


def add_on_the_wire(emu, client, *goals) -> dict:
    """AddConversionGoals as JSON: the SDK cannot read an answer that refuses a goal (its
    ConversionGoalIds holds null there), so these calls go out and come back as JSON."""
    answer = post(emu, client, ADD_PATH, {"ConversionGoals": [as_json(g) for g in goals]})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_null_ids_list_every_offline_goal_of_the_account(emu, cm, tenant):
    emu.admin.create_goal("Customer goal", customer_id=tenant.customer_id, count_type="Unique",
                          revenue_type="FixedValue", revenue_value=25, currency="EUR")
    other = emu.admin.create_account(tenant.customer_id)
    emu.admin.create_goal("Not ours", account_id=other["id"])
    response = list_offline(cm, ConversionGoalIds=None)
    goals = response.conversion_goals
    assert [g.name for g in goals] == ["Offline purchase", "Customer goal"]
    assert response.partial_errors == []
    mine, shared = goals
    assert isinstance(mine, OfflineConversionGoal) and isinstance(shared, OfflineConversionGoal)
    assert (mine.id, mine.scope, mine.status, str(mine.type)) == (
        str(tenant.goal_id), "Account", "Active", "OfflineConversion")
    assert (shared.count_type, shared.scope, shared.revenue.type) == ("Unique", "Customer",
                                                                      "FixedValue")
    assert shared.revenue.value == 25 and shared.revenue.currency_code == "EUR"
    assert mine.conversion_window_in_minutes == 43200 and mine.exclude_from_bidding is False


def test_a_goal_records_conversions_once_the_account_uploaded_one_for_it(emu, cm, tenant):
    emu.admin.create_goal("Shared", customer_id=tenant.customer_id)
    other = emu.admin.create_account(tenant.customer_id)["id"]
    clicks = {account: emu.admin.issue_click(account, click_time={"ago": 3 * 3600})
              for account in (tenant.account_id, other)}

    def statuses(account: int) -> dict[str, str]:
        cm.use(tenant, account_id=account)
        return {g.name: g.tracking_status.value for g in list_offline(cm).conversion_goals}

    assert statuses(tenant.account_id) == {"Offline purchase": "NoRecentConversions",
                                           "Shared": "NoRecentConversions"}
    cm.use(tenant, account_id=other)
    assert batch_errors(upload(cm, [conversion(tenant, ago(emu, hours=1), ConversionName="Shared",
                                               MicrosoftClickId=clicks[other])])) == []
    assert statuses(other) == {"Shared": "RecordingConversions"}
    assert statuses(tenant.account_id)["Shared"] == "NoRecentConversions"  # another's upload
    assert batch_errors(upload(cm.use(tenant), [conversion(
        tenant, ago(emu, hours=1), MicrosoftClickId=clicks[tenant.account_id])])) == []
    assert statuses(tenant.account_id) == {"Offline purchase": "RecordingConversions",
                                           "Shared": "NoRecentConversions"}


def test_fields_not_asked_for_are_absent(emu, cm, tenant):
    [bare] = list_offline(cm).conversion_goals
    assert (bare.goal_category, bare.is_externally_attributed, bare.attribution_model_type,
            bare.is_enhanced_conversions_enabled, bare.is_auto_goal) == (None,) * 5
    sent = emu.admin.requests(operation="GetConversionGoalsByIds")[-1]["response"]
    for name in ("GoalCategory", "IsExternallyAttributed", "AttributionModelType",
                 "IsEnhancedConversionsEnabled", "IsAutoGoal"):
        assert f'"{name}"' not in sent  # left out of the JSON, not sent as null
    [full] = list_offline(
        cm, ReturnAdditionalFields="GoalCategory,IsExternallyAttributed,AttributionModelType,"
                                   "IsEnhancedConversionsEnabled,IsAutoGoal,"
                                   "ViewThroughConversionWindowInMinutes").conversion_goals
    assert full.goal_category == "Purchase"
    assert full.is_externally_attributed is False
    assert full.is_enhanced_conversions_enabled is True
    assert full.attribution_model_type == "LastClick"
    assert full.is_auto_goal is False


def test_ids_that_are_not_found_come_back_null_with_a_partial_error(cm, tenant):
    response = list_offline(cm, ConversionGoalIds=["999", str(tenant.goal_id)])
    missing, found = response.conversion_goals  # null stays at the id's position
    assert missing is None and found.id == str(tenant.goal_id)
    [error] = response.partial_errors
    assert (error.index, error.code, error.error_code) == (0, 5314, "InvalidConversionGoalId")


def test_the_type_filter_applies(cm, tenant):
    response = cm.GetConversionGoalsByIds({"ConversionGoalTypes": "Url,Event"})
    assert response.conversion_goals == []
    both = cm.GetConversionGoalsByIds({"ConversionGoalTypes": "Url,OfflineConversion"})
    assert [g.id for g in both.conversion_goals] == [str(tenant.goal_id)]


@pytest.mark.parametrize("types", [None, "None"], ids=["omitted", "None"])
def test_goal_types_are_required(cm, tenant, types):
    with pytest.raises(ApiException) as caught:
        cm.GetConversionGoalsByIds({"ConversionGoalIds": None, "ConversionGoalTypes": types})
    status, fault = fault_of(caught)
    assert (status, fault["Type"]) == (400, "ApiFaultDetail")
    assert fault_codes(caught) == [(5329, "ConversionGoalTypesNotPassed")]


def test_an_unknown_goal_type_name_refuses_the_request(emu, cm, tenant):
    with pytest.raises(ValidationError):  # the SDK does not build it
        cm.GetConversionGoalsByIds({"ConversionGoalTypes": "Offline"})
    answer = post(emu, cm, GET_PATH, {"ConversionGoalTypes": "Offline"})
    fault = answer.json()
    assert (answer.status_code, fault["Type"]) == (400, "AdApiFaultDetail")
    [error] = fault["Errors"]
    assert (error["Code"], error["ErrorCode"]) == (100, "NullRequest")
    assert "Offline" in error["Detail"]


def test_more_than_100_ids_is_an_operation_error(cm, tenant):
    with pytest.raises(ApiException) as caught:
        list_offline(cm, ConversionGoalIds=[str(i) for i in range(1, 102)])
    assert fault_of(caught)[0] == 400
    assert fault_codes(caught) == [(5318, "ConversionGoalIdArrayExceedsLimit")]
    assert len(list_offline(cm, ConversionGoalIds=[str(tenant.goal_id)] * 100)
               .conversion_goals) == 100


def test_added_goals_get_ids_and_read_back(emu, cm, tenant):
    response = add(cm, offline_goal(name="Phone sale", count_type="Unique",
                                    conversion_window_in_minutes=129600,
                                    is_externally_attributed=True),
                   offline_goal(name="Store visit", scope="Customer", currency_code="GBP",
                                revenue_type="FixedValue", revenue_value=12.5))
    ids = response.conversion_goal_ids
    assert len(ids) == 2 and all(i.isdigit() for i in ids)
    assert response.partial_errors == []
    goals = {g.name: g for g in list_offline(
        cm, ConversionGoalIds=ids,
        ReturnAdditionalFields="IsExternallyAttributed,IsEnhancedConversionsEnabled"
    ).conversion_goals}
    sale, visit = goals["Phone sale"], goals["Store visit"]
    assert (sale.count_type, sale.conversion_window_in_minutes) == ("Unique", 129600)
    assert sale.is_externally_attributed is True
    assert sale.is_enhanced_conversions_enabled is False  # only the web UI switches it on
    assert (visit.scope, visit.revenue.value, visit.revenue.currency_code) == (
        "Customer", 12.5, "GBP")
    created = {g["name"]: g for g in emu.admin.goals()}
    assert created["Phone sale"]["created_by"] == "api"
    assert str(created["Store visit"]["id"]) == ids[1]


def test_goal_rules_give_batch_errors_at_their_index(emu, cm, tenant):
    other_account = emu.admin.create_account(tenant.customer_id)
    emu.admin.create_goal("Taken", account_id=other_account["id"])
    answer = add_on_the_wire(
        emu, cm,
        offline_goal(name="Fine"),
        offline_goal(name="Taken"),  # unique per customer, not per account
        offline_goal(name="Fine"),  # twice in one call
        offline_goal(name="Zero window", conversion_window_in_minutes=0),
        offline_goal(name="Long window", conversion_window_in_minutes=129601),
        offline_goal(name=""),
        offline_goal(name="x" * 101),
        offline_goal(name="No currency", scope="Customer", currency_code=None),
        offline_goal(name="Fixed without value", revenue_type="FixedValue",
                     revenue_value=None),
        offline_goal(name="No category", goal_category=None),
        offline_goal(name="Bad currency", currency_code="Dollars"),
    )
    ids = answer["ConversionGoalIds"]
    assert ids[0].isdigit() and ids[1:] == [None] * 10
    codes = [(e["Index"], e["Code"]) for e in answer["PartialErrors"]]
    assert codes == [(1, 5317), (2, 5316), (3, 5337), (4, 5337), (5, 5319), (6, 5320),
                     (7, 5355), (8, 5333), (9, 5364), (10, 5351)]
    assert [g["name"] for g in emu.admin.goals() if g["created_by"] == "api"] == ["Fine"]


def test_the_sdk_cannot_read_an_add_answer_with_a_refused_goal(emu, cm, tenant):
    """Microsoft answers null at a refused goal's index; the SDK's AddConversionGoalsResponse
    declares its ids non-null, so the call raises instead of returning the PartialErrors."""
    with pytest.raises(ValidationError, match="ConversionGoalIds"):
        add(cm, offline_goal(name=tenant.goal_name))
    answer = json.loads(emu.admin.requests(operation="AddConversionGoals")[-1]["response"])
    assert answer["ConversionGoalIds"] == [None]
    assert [(e["Index"], e["Code"], e["ErrorCode"]) for e in answer["PartialErrors"]] == [
        (0, 5317, "ConversionGoalNameAlreadyExists")]


@pytest.mark.parametrize("currency, ok", [("TRL", True), ("HRK", True), ("VEF", True),
                                          ("EUR", True), ("TRY", False), ("eur", False)])
def test_goal_revenue_currency_must_be_on_microsofts_list(emu, cm, tenant, currency, ok):
    goal = offline_goal(name=f"Revenue in {currency}", currency_code=currency)
    if ok:
        response = add(cm, goal)
        assert response.conversion_goal_ids[0].isdigit() and response.partial_errors == []
    else:
        answer = add_on_the_wire(emu, cm, goal)
        assert answer["ConversionGoalIds"] == [None]
        [error] = answer["PartialErrors"]
        assert (error["Index"], error["Code"], error["ErrorCode"]) == (
            0, 5351, "InvalidGoalCurrencyCode")


@pytest.mark.parametrize("field, value", [
    ("CountType", "Everything"),  # not a ConversionGoalCountType name
    ("Status", ""),  # an empty enum value
    ("ConversionWindowInMinutes", "43200"),  # a number sent as a string
    ("IsExternallyAttributed", 1),  # a number for a boolean
])
def test_an_unreadable_goal_refuses_the_whole_request(emu, cm, tenant, field, value):
    fine = as_json(offline_goal(name="Fine"))
    bad = {**as_json(offline_goal(name="Unreadable")), field: value}
    answer = post(emu, cm, ADD_PATH, {"ConversionGoals": [fine, bad]})
    fault = answer.json()
    assert (answer.status_code, fault["Type"]) == (400, "AdApiFaultDetail")
    [error] = fault["Errors"]
    assert (error["Code"], error["ErrorCode"]) == (100, "NullRequest")
    assert f"ConversionGoals[1].{field}" in error["Detail"]
    assert fault["TrackingId"] == answer.headers["TrackingId"]
    assert not [g for g in emu.admin.goals() if g["created_by"] == "api"]  # not even "Fine"


@pytest.mark.parametrize("body", [{"ConversionGoals": []}, {}], ids=["empty", "omitted"])
def test_no_goals_is_an_operation_error(cm, tenant, body):
    with pytest.raises(ApiException) as caught:
        cm.AddConversionGoals(body)
    status, fault = fault_of(caught)
    assert (status, fault["Type"]) == (400, "ApiFaultDetail")
    assert fault_codes(caught) == [(5321, "ConversionGoalsNotPassed")]
