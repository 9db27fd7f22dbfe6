"""GetConversionGoalsByIds and AddConversionGoals through the real bingads SDK."""

from __future__ import annotations

from decimal import Decimal

import pytest
from suds import WebFault


def goals_of(response) -> list:
    if not response.ConversionGoals:
        return []
    return response.ConversionGoals.ConversionGoal


def offline_goal(cm, **fields):
    """An OfflineConversionGoal built like Microsoft's examples (unset members to None)."""
    goal = cm.factory.create("OfflineConversionGoal")
    for key, _ in goal:
        goal[key] = None
    revenue = cm.factory.create("ConversionGoalRevenue")
    for key, _ in revenue:
        revenue[key] = None
    revenue.Type = fields.pop("RevenueType", "VariableValue")
    revenue.Value = fields.pop("RevenueValue", 0)
    revenue.CurrencyCode = fields.pop("CurrencyCode", "USD")
    goal.Revenue = revenue
    goal.ConversionWindowInMinutes = 43200
    goal.CountType = "All"
    goal.GoalCategory = "Purchase"
    goal.Scope = "Account"
    goal.Status = "Active"
    for key, value in fields.items():
        goal[key] = value
    return goal


def add(cm, *goals):
    arr = cm.factory.create("ArrayOfConversionGoal")
    arr.ConversionGoal.extend(goals)
    return cm.AddConversionGoals(ConversionGoals=arr)


def test_null_ids_list_every_offline_goal_of_the_account(emu, cm, tenant):
    emu.admin.create_goal("Customer goal", customer_id=tenant.customer_id, count_type="Unique",
                          revenue_type="FixedValue", revenue_value=25, currency="EUR")
    other = emu.admin.create_account(tenant.customer_id)
    emu.admin.create_goal("Not ours", account_id=other["id"])
    response = cm.GetConversionGoalsByIds(ConversionGoalIds=None,
                                          ConversionGoalTypes="OfflineConversion")
    goals = goals_of(response)
    assert [g.Name for g in goals] == ["Offline purchase", "Customer goal"]
    assert response.PartialErrors is None
    mine, shared = goals
    assert type(mine).__name__ == "OfflineConversionGoal"
    assert (mine.Id, mine.Scope, mine.Status, mine.Type) == (tenant.goal_id, "Account",
                                                             "Active", "OfflineConversion")
    assert (shared.CountType, shared.Scope, shared.Revenue.Type) == ("Unique", "Customer",
                                                                     "FixedValue")
    assert shared.Revenue.Value == Decimal("25") and shared.Revenue.CurrencyCode == "EUR"
    assert mine.ConversionWindowInMinutes == 43200 and mine.ExcludeFromBidding is False


def test_fields_not_asked_for_are_absent(cm, tenant):
    [bare] = goals_of(cm.GetConversionGoalsByIds(ConversionGoalTypes="OfflineConversion"))
    for name in ("GoalCategory", "IsExternallyAttributed", "AttributionModelType",
                 "IsEnhancedConversionsEnabled"):
        assert not hasattr(bare, name)
    [full] = goals_of(cm.GetConversionGoalsByIds(
        ConversionGoalTypes="OfflineConversion",
        ReturnAdditionalFields="GoalCategory IsExternallyAttributed AttributionModelType "
                               "IsEnhancedConversionsEnabled IsAutoGoal "
                               "ViewThroughConversionWindowInMinutes"))
    assert full.GoalCategory == "Purchase"
    assert full.IsExternallyAttributed is False
    assert full.IsEnhancedConversionsEnabled is True
    assert full.AttributionModelType == "LastClick"


def test_ids_that_are_not_found_come_back_null_with_a_partial_error(emu, cm, tenant):
    response = cm.GetConversionGoalsByIds(ConversionGoalIds={"long": [999, tenant.goal_id]},
                                          ConversionGoalTypes="OfflineConversion")
    # The wire has <ConversionGoal i:nil="true"/> first; suds drops nil list items, so only
    # the PartialErrors Index says which id was not found.
    assert '<ConversionGoal i:nil="true"/>' in emu.admin.requests()[-1]["response"]
    assert [g.Id for g in goals_of(response)] == [tenant.goal_id]
    [error] = response.PartialErrors.BatchError
    assert (error.Index, error.Code, error.ErrorCode) == (0, 5314, "InvalidConversionGoalId")


def test_the_type_filter_applies(cm, tenant):
    response = cm.GetConversionGoalsByIds(ConversionGoalTypes="Url Event")
    assert goals_of(response) == []


def test_goal_types_are_required(cm, tenant):
    with pytest.raises(WebFault) as caught:
        cm.GetConversionGoalsByIds(ConversionGoalIds=None)
    errors = caught.value.fault.detail.ApiFaultDetail.OperationErrors.OperationError
    assert (errors.Code, errors.ErrorCode) == ("5329", "ConversionGoalTypesNotPassed")


def test_more_than_100_ids_is_an_operation_error(cm, tenant):
    with pytest.raises(WebFault) as caught:
        cm.GetConversionGoalsByIds(ConversionGoalIds={"long": list(range(1, 102))},
                                   ConversionGoalTypes="OfflineConversion")
    assert caught.value.fault.detail.ApiFaultDetail.OperationErrors.OperationError.Code == "5318"


def test_added_goals_get_ids_and_read_back(emu, cm, tenant):
    response = add(cm, offline_goal(cm, Name="Phone sale", CountType="Unique",
                                    ConversionWindowInMinutes=129600,
                                    IsExternallyAttributed=True),
                   offline_goal(cm, Name="Store visit", Scope="Customer", CurrencyCode="GBP",
                                RevenueType="FixedValue", RevenueValue=12.5))
    ids = response.ConversionGoalIds.long
    assert len(ids) == 2 and all(isinstance(i, int) for i in ids)
    assert response.PartialErrors == ""
    goals = {g.Name: g for g in goals_of(cm.GetConversionGoalsByIds(
        ConversionGoalIds={"long": ids}, ConversionGoalTypes="OfflineConversion",
        ReturnAdditionalFields="IsExternallyAttributed IsEnhancedConversionsEnabled"))}
    sale, visit = goals["Phone sale"], goals["Store visit"]
    assert (sale.CountType, sale.ConversionWindowInMinutes) == ("Unique", 129600)
    assert sale.IsExternallyAttributed is True
    assert sale.IsEnhancedConversionsEnabled is False  # only the web UI switches it on
    assert (visit.Scope, visit.Revenue.Value, visit.Revenue.CurrencyCode) == (
        "Customer", Decimal("12.5"), "GBP")
    created = {g["name"]: g for g in emu.admin.goals()}
    assert created["Phone sale"]["created_by"] == "api"


def test_goal_rules_give_batch_errors_at_their_index(emu, cm, tenant):
    other_account = emu.admin.create_account(tenant.customer_id)
    emu.admin.create_goal("Taken", account_id=other_account["id"])
    response = add(
        cm,
        offline_goal(cm, Name="Fine"),
        offline_goal(cm, Name="Taken"),  # unique per customer, not per account
        offline_goal(cm, Name="Fine"),  # twice in one call
        offline_goal(cm, Name="Zero window", ConversionWindowInMinutes=0),
        offline_goal(cm, Name="Long window", ConversionWindowInMinutes=129601),
        offline_goal(cm, Name=""),
        offline_goal(cm, Name="x" * 101),
        offline_goal(cm, Name="No currency", Scope="Customer", CurrencyCode=None),
        offline_goal(cm, Name="Fixed without value", RevenueType="FixedValue",
                     RevenueValue=None),
        offline_goal(cm, Name="No category", GoalCategory=None),
        offline_goal(cm, Name="Bad currency", CurrencyCode="Dollars"),
    )
    ids = response.ConversionGoalIds.long
    assert isinstance(ids[0], int) and ids[1:] == [None] * 10
    codes = [(e.Index, e.Code) for e in response.PartialErrors.BatchError]
    assert codes == [(1, 5317), (2, 5316), (3, 5337), (4, 5337), (5, 5319), (6, 5320),
                     (7, 5355), (8, 5333), (9, 5364), (10, 5351)]


@pytest.mark.parametrize("currency, ok", [("TRL", True), ("HRK", True), ("VEF", True),
                                          ("EUR", True), ("TRY", False), ("eur", False)])
def test_goal_revenue_currency_must_be_on_microsofts_list(cm, tenant, currency, ok):
    response = add(cm, offline_goal(cm, Name=f"Revenue in {currency}", CurrencyCode=currency))
    if ok:
        assert isinstance(response.ConversionGoalIds.long[0], int)
    else:
        [error] = response.PartialErrors.BatchError
        assert (error.Index, error.Code, error.ErrorCode) == (0, 5351,
                                                              "InvalidGoalCurrencyCode")


def test_an_empty_enum_member_is_a_deserialization_fault(cm, tenant):
    goal = cm.factory.create("OfflineConversionGoal")  # members left unset go out empty
    goal.Name = "Forgot set_elements_to_none"
    goal.GoalCategory = "Purchase"
    with pytest.raises(WebFault) as caught:
        add(cm, goal)
    assert caught.value.fault.faultcode == "a:DeserializationFailed"
    assert "Invalid enum value" in caught.value.fault.faultstring


def test_no_goals_is_an_operation_error(cm, tenant):
    with pytest.raises(WebFault) as caught:
        cm.AddConversionGoals(ConversionGoals={"ConversionGoal": []})
    assert caught.value.fault.detail.ApiFaultDetail.OperationErrors.OperationError.Code == "5321"
