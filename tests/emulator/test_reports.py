"""The offline conversion reports' per-record files (DailySummary.FileUrl) and the report lag,
through Microsoft's REST SDK (msads). The files are fetched as a pre-signed link is: a plain
GET with no API headers."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import timedelta

import pytest

from include.msads_emulator import AdminError
from include.msads_emulator.testing import assert_conformant, campaign_client, http_session
from tests.emulator.support import ago, batch_errors, conversion, emu_now, upload

HEADER = ["RecordId", "ChannelName", "GoalId", "ConversionName", "ConversionTime",
          "MicrosoftClickId", "HashedEmailAddress", "HashedPhoneNumber", "Status",
          "UnattributedReason", "AdjustmentType"]
SHA = hashlib.sha256(b"someone@example.com").hexdigest()
NEVER_ISSUED = "0" * 32
HOUR = 3600


@pytest.fixture
def cm(emu, tenant):
    """Campaign Management with an access token that outlives the days these tests move the
    emulator's clock by."""
    token = emu.admin.issue_access_token(tenant.user_id, lifetime_seconds=7 * 24 * HOUR)
    return campaign_client(emu, tenant, access_token=token)


@pytest.fixture
def click(emu, tenant):
    return emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * HOUR})


def daily(cm) -> list:
    """GetOfflineConversionReports over all time (open start and end)."""
    return cm.GetOfflineConversionReports({}).daily_summaries or []


def download(emu, url: str):
    """A FileUrl fetched as a download link: no Authorization, DeveloperToken or ids."""
    with http_session(emu) as session:
        return session.get(url, timeout=30)


def records(emu, url: str) -> list[dict]:
    answer = download(emu, url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8"))))
    assert rows[0] == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def iso_z(when) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_a_daily_summary_links_a_csv_of_each_record_uploaded_that_day(emu, cm, tenant, click):
    when, later = ago(emu, hours=1), ago(emu, hours=-1)
    emu.admin.issue_click(tenant.account_id, click_time={"ago": 2 * HOUR}, hashed_email=SHA)
    sent = [conversion(tenant, when, MicrosoftClickId=click),        # counted
            conversion(tenant, when, MicrosoftClickId=NEVER_ISSUED),  # accepted, not counted
            conversion(tenant, when, ConversionName="No such goal", MicrosoftClickId=click),
            conversion(tenant, when, HashedEmailAddress=SHA),         # a clicker's: counted
            conversion(tenant, later, MicrosoftClickId=click)]        # in the future
    answer = upload(cm, sent)
    assert batch_errors(answer) == [(2, 5606, "OfflineConversionNameInvalid"),
                                    (4, 5614, "FutureConversionTimeCannotBeSet")]
    tracking = cm.tracking_id
    now = emu_now(emu)

    [day] = daily(cm)
    assert (day.upload_date.date(), day.success_count, day.failure_count) == (now.date(), 3, 2)
    assert day.file_url.startswith(f"https://127.0.0.1:{emu.port}/reports/offline/")
    assert day.file_url.endswith(".csv")
    lifetime = (day.file_url_expiry_time_utc - now).total_seconds()
    assert HOUR - 2 <= lifetime <= HOUR

    rows = records(emu, day.file_url)
    goal, name, at = str(tenant.goal_id), tenant.goal_name, iso_z(when)
    assert [list(r.values()) for r in rows] == [
        [f"{tracking}:0", "CampaignManagementAPI", goal, name, at, click, "", "", "Success",
         "", ""],
        [f"{tracking}:1", "CampaignManagementAPI", goal, name, at, NEVER_ISSUED, "", "",
         "Success", "NoMatchingClickFound", ""],
        [f"{tracking}:2", "CampaignManagementAPI", "", "No such goal", at, click, "", "",
         "OfflineConversionNameInvalid", "", ""],
        [f"{tracking}:3", "CampaignManagementAPI", goal, name, at, "", SHA, "", "Success", "",
         ""],
        [f"{tracking}:4", "CampaignManagementAPI", goal, name, iso_z(later), click, "", "",
         "FutureConversionTimeCannotBeSet", "", ""]]
    # The file agrees with both reports: its Success rows are the day's SuccessCount, the
    # others its FailureCount, and its reasons the goal report's alerts.
    assert sum(r["Status"] == "Success" for r in rows) == day.success_count
    assert sum(r["Status"] != "Success" for r in rows) == day.failure_count
    [summary] = cm.GetOfflineConversionReportByGoalIds({}).offline_goal_conversion_summaries
    assert [(a.unattributed_reason.value, a.count) for a in summary.overall_alerts] == [
        ("NoMatchingClickFound", "1")]
    # Every REST answer, FileUrl and FileUrlExpiryTimeUtc included, reads strictly in the SDK;
    # the downloads are not REST answers and are logged apart.
    assert assert_conformant(emu) >= 3
    assert [r["status"] for r in emu.admin.requests(service="files")] == [200]


def test_a_refused_item_is_a_row_as_it_was_sent(emu, cm, tenant, click):
    """Items the SDK will not send (a time that is no date, a null item), POSTed as JSON."""
    body = {"OfflineConversions": [
        {"ConversionName": tenant.goal_name, "ConversionTime": "not a time",
         "MicrosoftClickId": click}, None]}
    with http_session(emu) as session:
        answer = session.post(emu.base_url + "/CampaignManagement/v13/OfflineConversions/Apply",
                              json=body, headers=cm.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    tracking = answer.headers["TrackingId"]
    [day] = daily(cm)
    assert [list(r.values()) for r in records(emu, day.file_url)] == [
        [f"{tracking}:0", "CampaignManagementAPI", str(tenant.goal_id), tenant.goal_name,
         "not a time", click, "", "", "OfflineConversionTimeInvalid", "", ""],
        [f"{tracking}:1", "CampaignManagementAPI", "", "", "", "", "", "",
         "OfflineConversionIsNull", "", ""]]


def test_a_conversion_that_stops_counting_shows_its_reason_at_the_next_download(emu, cm,
                                                                               tenant, click):
    emu.admin.update_goal(tenant.goal_id, count_type="Unique")
    upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)])
    [day] = daily(cm)
    assert [r["UnattributedReason"] for r in records(emu, day.file_url)] == [""]
    upload(cm, [conversion(tenant, ago(emu, hours=2), MicrosoftClickId=click)])  # earlier
    assert [r["UnattributedReason"] for r in records(emu, day.file_url)] == [
        "DuplicateConversionKey", ""]


def test_a_file_url_expires_and_needs_no_api_headers(emu, cm, tenant, click):
    upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)])
    [day] = daily(cm)
    assert len(records(emu, day.file_url)) == 1
    with http_session(emu) as session:
        assert session.post(day.file_url, timeout=30).status_code == 405
    made_up = day.file_url.rsplit("/", 1)[0] + "/" + "x" * 32 + ".csv"
    assert download(emu, made_up).status_code == 404

    emu.admin.advance(HOUR - 5)
    assert download(emu, day.file_url).status_code == 200
    emu.admin.advance(5)
    expired = download(emu, day.file_url)
    assert expired.status_code == 403 and "GetOfflineConversionReports" in expired.text
    [again] = daily(cm)  # a new link, valid for another hour
    assert again.file_url != day.file_url
    assert len(records(emu, again.file_url)) == 1


def test_a_fault_can_hit_the_download(emu, cm, tenant, click):
    upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)])
    [day] = daily(cm)
    emu.admin.add_fault("http_error", operation="report_file", http_status=503)
    assert download(emu, day.file_url).status_code == 503
    assert len(records(emu, day.file_url)) == 1


def test_each_day_has_its_own_file(emu, cm, tenant, click):
    upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)])
    first_tracking = cm.tracking_id
    emu.admin.advance(24 * HOUR)
    upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=NEVER_ISSUED)])
    second_tracking = cm.tracking_id
    first, second = daily(cm)
    assert second.upload_date - first.upload_date == timedelta(days=1)
    assert [(r["RecordId"], r["UnattributedReason"]) for r in records(emu, first.file_url)] == [
        (f"{first_tracking}:0", "")]
    assert [(r["RecordId"], r["UnattributedReason"]) for r in records(emu, second.file_url)] == [
        (f"{second_tracking}:0", "NoMatchingClickFound")]


def test_accepted_adjustments_are_rows_with_their_adjustment_type(emu, cm, tenant, click):
    when = ago(emu, hours=2)
    upload(cm, [conversion(tenant, when, MicrosoftClickId=click)])
    restate = {"ConversionName": tenant.goal_name, "ConversionTime": when.isoformat(),
               "MicrosoftClickId": click, "AdjustmentType": "Restate", "AdjustmentValue": 5.0,
               "AdjustmentCurrencyCode": "USD", "AdjustmentTime": ago(emu, hours=1).isoformat()}
    orphan = {**restate, "MicrosoftClickId": NEVER_ISSUED}
    refused = {**restate, "AdjustmentType": "Retract"}  # a Retract has no value: 5624
    adjust = cm.ApplyOfflineConversionAdjustments
    answer = adjust({"OfflineConversionAdjustments": [restate, orphan, refused]})
    assert batch_errors(answer) == [(2, 5624, "OfflineConversionAdjustmentValueNotExpected")]
    tracking = cm.tracking_id
    adjust({"OfflineConversionAdjustments": [restate]})  # a duplicate: ignored, as conversions

    [day] = daily(cm)
    assert (day.success_count, day.failure_count) == (1, 0)  # conversions only
    rows = records(emu, day.file_url)
    assert [(r["RecordId"], r["MicrosoftClickId"], r["Status"], r["UnattributedReason"],
             r["AdjustmentType"]) for r in rows[1:]] == [
        (f"{tracking}:0", click, "Success", "", "Restate"),
        (f"{tracking}:1", NEVER_ISSUED, "Success", "AdjustmentOriginalNotFound", "Restate")]
    assert rows[0]["AdjustmentType"] == ""

    # A day with adjustments only is reported, with its file and no conversions.
    emu.admin.advance(24 * HOUR)
    retract = {k: v for k, v in refused.items()
               if k not in ("AdjustmentValue", "AdjustmentCurrencyCode")}
    retract["AdjustmentTime"] = ago(emu, hours=1).isoformat()
    assert batch_errors(adjust({"OfflineConversionAdjustments": [retract]})) == []
    first, second = daily(cm)
    assert (second.success_count, second.failure_count) == (0, 0)
    assert [(r["AdjustmentType"], r["ConversionTime"]) for r in records(
        emu, second.file_url)] == [("Retract", iso_z(when))]


def test_the_report_lag_hides_recent_uploads_from_both_reports_and_the_file(emu, cm, tenant,
                                                                            click):
    assert emu.admin.settings()["report_lag_seconds"] == 0
    emu.admin.update_settings(report_lag_seconds=6 * HOUR)
    upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click),
                conversion(tenant, ago(emu, hours=1), ConversionName="No such goal",
                           MicrosoftClickId=click)])

    def goal_counts():
        [goal] = cm.GetOfflineConversionReportByGoalIds({}).offline_goal_conversion_summaries
        return goal.overall_success_count, len(goal.daily_summaries or [])

    emu.admin.advance(6 * HOUR - 60)
    assert daily(cm) == []
    assert goal_counts() == ("0", 0)

    emu.admin.advance(60)
    [day] = daily(cm)
    assert (day.success_count, day.failure_count) == (1, 1)
    assert goal_counts() == ("1", 1)
    assert [r["Status"] for r in records(emu, day.file_url)] == [
        "Success", "OfflineConversionNameInvalid"]

    # The file applies the lag when it is downloaded.
    emu.admin.update_settings(report_lag_seconds=12 * HOUR)
    assert records(emu, day.file_url) == []


@pytest.mark.parametrize("value", [-1, "6h", True, None])
def test_the_report_lag_is_a_number_of_seconds(emu, tenant, value):
    with pytest.raises(AdminError, match="report_lag_seconds") as caught:
        emu.admin.update_settings(report_lag_seconds=value)
    assert caught.value.status == 400
