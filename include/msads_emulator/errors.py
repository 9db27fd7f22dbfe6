"""Microsoft Advertising error codes the emulator answers with: Code -> (ErrorCode, Message)."""

from __future__ import annotations

from include.msads_emulator.soap import BatchError, SoapFault, adapi_fault, operation_fault

# From Microsoft's operation error codes page unless marked "emulator's choice":
# https://learn.microsoft.com/en-us/advertising/guides/operation-error-codes?view=bingads-13
# (5600-5627 and 303 with Microsoft's descriptions word for word).
CODES: dict[int, tuple[str, str]] = {
    0: ("InternalError", "An internal error has occurred."),
    105: ("InvalidCredentials", "Authentication failed. Either supplied credentials are invalid "
          "or the account is inactive."),
    106: ("UserIsNotAuthorized", "The user does not represent a authorized developer."),
    109: ("AuthenticationTokenExpired", "Authentication token expired. Please renew it or "
          "obtain a new token."),
    116: ("RequestMissingHeaders", "Request is missing required headers."),
    117: ("CallRateExceeded", "You have exceeded the number of calls that you are allowed to "
          "make in a minute. Please reduce the number of calls that you make per minute."),
    120: ("UserLoginAccessDenied", "The credentials are not the user's primary login."),
    303: ("ApiVersionNoLongerSupported", "This version of the Bing Ads API is no longer "
          "supported. Please migrate to the latest version of the API. For more details, visit "
          "https://go.microsoft.com/fwlink/?linkid=862106."),
    1029: ("CampaignServiceCustomerIdHasToBeSpecified", "The CustomerId header element cannot "
           "be null or empty."),
    1030: ("CampaignServiceAccountIdHasToBeSpecified", "The CustomerAccountId header element "
           "cannot be null or empty."),
    1102: ("CampaignServiceInvalidAccountId", "The account ID is invalid."),
    2928: ("CampaignServiceCustomerDataBeingMigrated", "You cannot modify data for this "
           "customer while it is under migration."),
    5314: ("InvalidConversionGoalId", "The conversion goal ID is invalid."),
    5316: ("DuplicateConversionGoalName", "Duplicate conversion goal names are not allowed."),
    5317: ("ConversionGoalNameAlreadyExists", "A conversion goal with the same name already "
           "exists for the customer."),
    5318: ("ConversionGoalIdArrayExceedsLimit", "The list of conversion goal IDs exceeds the "
           "limit."),
    5319: ("ConversionGoalNameNotPassed", "The conversion goal name is required."),
    5320: ("InvalidConversionGoalName", "The conversion goal name is invalid or too long."),
    5321: ("ConversionGoalsNotPassed", "The list of conversion goals cannot be null or empty."),
    5322: ("ConversionGoalArrayExceedsLimit", "The list of conversion goals exceeds the limit."),
    5323: ("ConversionGoalIsNull", "The conversion goal cannot be null."),
    5324: ("ConversionGoalIdIsNotNull", "The conversion goal ID must be null when you add a "
           "conversion goal."),
    5329: ("ConversionGoalTypesNotPassed", "The conversion goal types are required."),
    5331: ("ConversionGoalTypeNotMatched", "The conversion goal type does not match the goal."),
    5332: ("InvalidConversionGoalRevenueType", "The conversion goal revenue type is invalid."),
    5333: ("InvalidConversionGoalRevenueValue", "The conversion goal revenue value is invalid."),
    5337: ("InvalidConversionGoalConversionWindow", "The conversion window must be between 1 "
           "and 129600 minutes."),
    5351: ("InvalidGoalCurrencyCode", "The goal currency code is invalid."),
    5355: ("GoalCurrencyCodeIsNull", "The currency code is required for this goal type."),
    # Emulator's choice: Microsoft requires GoalCategory on Add since June 2021 but publishes
    # no code for a missing or unsuitable one.
    5364: ("InvalidCategoryForGoalType", "The goal category is missing or not valid for an "
           "offline conversion goal."),
    5600: ("OfflineConversionsNullOrEmpty", "The list of offline conversions cannot be null or "
           "empty."),
    5601: ("OfflineConversionsLimitExceeded", "The list of offline conversions exceeds the "
           "limit."),
    5602: ("OfflineConversionIsNull", "The offline conversion cannot be null."),
    5603: ("OfflineConversionMicrosoftClickIdNullOrEmpty", "The Microsoft Click Id of offline "
           "conversion cannot be null or empty."),
    5604: ("OfflineConversionMicrosoftClickIdInvalid", "The Microsoft Click Id of the offline "
           "conversion is invalid."),
    5605: ("OfflineConversionNameNullOrEmpty", "The conversion name of offline conversion cannot "
           "be null or empty."),
    5606: ("OfflineConversionNameInvalid", "The conversion name do not match an existing offline "
           "conversion goal."),
    5607: ("OfflineConversionTimeInvalid", "The conversion time of offline conversion is "
           "invalid."),
    5608: ("OfflineConversionTimeNullOrEmpty", "The conversion time of offline conversion cannot "
           "be null or empty ."),
    5609: ("OfflineConversionTimeOutOfWindow", "The conversion time is out of the conversion "
           "window."),
    5610: ("OfflineConversionValueInvalid", "The conversion value of offline conversion is "
           "invalid."),
    5611: ("OfflineConversionCurrencyCodeInvalid", "The currency code of offline conversion is "
           "invalid."),
    5612: ("OfflineConversionsApplyFailed", "Failed to send offline conversions to internal "
           "server."),
    5613: ("OfflineConversionPilotNotEnabledForCustomer", "The customer is not enabled for the "
           "offline conversion feature."),
    5614: ("FutureConversionTimeCannotBeSet", "A future conversion time cannot be set."),
    5615: ("OfflineConversionNotAcceptedForGoal", "Offline conversions cannot be accepted for "
           "the conversion goal at this time. You must wait 2 hours after the goal was created "
           "before uploading offline conversions."),
    5616: ("ConversionTimeEarlierThanClickTime", "The conversion time must be later than the "
           "click time."),
    5617: ("ClickIdDateTimeOutsideGoalConversionWindow", "The date and time for the click ID is "
           "outside the conversion window for this goal."),
    5618: ("OfflineConversionInvalidAdjustmentType", "The offline conversion adjustment type is "
           "invalid."),
    5619: ("OfflineConversionAdjustmentTimeNullOrEmpty", "The offline conversion adjustment time "
           "is empty."),
    5620: ("OfflineConversionAdjustmentTimeEarlierThanConversionTime", "The offline conversion "
           "adjustment time is earlier than conversion time."),
    5621: ("OfflineConversionAdjustmentTimeInvalid", "The offline conversion adjustment time is "
           "invalid."),
    5622: ("OfflineConversionFutureAdjustmentTimeCannotBeSet", "The offline conversion "
           "adjustment time cannot be in the future."),
    5623: ("OfflineConversionAdjustmentTimeOutOfWindow", "The offline conversion adjustment time "
           "is out of the window."),
    5624: ("OfflineConversionAdjustmentValueNotExpected", "The offline conversion adjustment "
           "value is not expected."),
    5625: ("OfflineConversionAdjustmentValueRequired", "The offline conversion adjustment value "
           "is required."),
    5626: ("OfflineConversionCurrencyValueRequired", "The offline conversion currency value is "
           "required."),
    5627: ("OfflineConversionRestateRetractNotSupported", "The offline conversion restate or "
           "retract operation is not supported."),
}


def batch_error(index: int, code: int, field_path: str | None = None) -> BatchError:
    error_code, message = CODES[code]
    return BatchError(index=index, code=code, error_code=error_code, message=message,
                      field_path=field_path)


def adapi(code: int, http_status: int | None = None) -> SoapFault:
    error_code, message = CODES[code]
    return adapi_fault(code, error_code, message, http_status)


def operation(code: int) -> SoapFault:
    error_code, message = CODES[code]
    return operation_fault(code, error_code, message)
