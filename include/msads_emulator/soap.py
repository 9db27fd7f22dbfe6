"""SOAP 1.1 for the emulator: read requests by namespace, write WSDL-ordered replies and faults."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CM_NS = "https://bingads.microsoft.com/CampaignManagement/v13"
CUSTOMER_NS = "https://bingads.microsoft.com/Customer/v13"
CUSTOMER_ENTITIES_NS = "https://bingads.microsoft.com/Customer/v13/Entities"
CUSTOMER_EXCEPTION_NS = "https://bingads.microsoft.com/Customer/v13/Exception"
ADAPI_NS = "https://adapi.microsoft.com"
ARRAYS_NS = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
SYSTEM_NS = "http://schemas.datacontract.org/2004/07/System"
GENERIC_NS = "http://schemas.datacontract.org/2004/07/System.Collections.Generic"

FAULT_STRING = ("Invalid client data. Check the SOAP fault details for more information. "
                "TrackingId: {tracking_id}.")


class SoapRequestError(Exception):
    """The request is not a SOAP 1.1 envelope we can read (answered with HTTP 400)."""


@dataclass
class SoapRequest:
    operation: str
    headers: dict[str, str]
    body: ET.Element  # the <Operation>Request element


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_request(raw: bytes, soap_action: str | None, service_ns: str) -> SoapRequest:
    """Read an envelope by namespace URI (prefixes change per call) and find the operation."""
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise SoapRequestError(f"the request body is not XML: {exc}") from exc
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapRequestError("the request is not a SOAP 1.1 envelope")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None or len(body) == 0:
        raise SoapRequestError("the SOAP envelope has no Body content")
    payload = body[0]
    headers: dict[str, str] = {}
    header = root.find(f"{{{SOAP_ENV}}}Header")
    if header is not None:
        for child in header:
            if child.tag.startswith(f"{{{service_ns}}}"):
                headers[local(child.tag)] = (child.text or "").strip()
    operation = ""
    if soap_action:
        operation = soap_action.strip().strip('"').rstrip("/").rsplit("/", 1)[-1]
    if not operation:
        name = local(payload.tag)
        operation = name[:-len("Request")] if name.endswith("Request") else name
    return SoapRequest(operation=operation, headers=headers, body=payload)


def is_nil(el: ET.Element | None) -> bool:
    return el is not None and el.get(f"{{{XSI}}}nil", "").lower() in ("true", "1")


def child(el: ET.Element | None, name: str, ns: str = CM_NS) -> ET.Element | None:
    if el is None:
        return None
    return el.find(f"{{{ns}}}{name}")


def text(el: ET.Element | None, name: str, ns: str = CM_NS) -> str | None:
    """The text of a child element; None when it is absent or nil."""
    c = child(el, name, ns)
    if c is None or is_nil(c):
        return None
    return c.text or ""


def children(el: ET.Element | None, name: str, ns: str = CM_NS) -> list[ET.Element]:
    if el is None:
        return []
    return el.findall(f"{{{ns}}}{name}")


def xsi_type(el: ET.Element) -> str | None:
    value = el.get(f"{{{XSI}}}type")
    return value.rsplit(":", 1)[-1] if value else None


# -- writing ----------------------------------------------------------------------------------


def x(value) -> str:
    """A value as XML text: booleans as true/false, everything else escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value != int(value) else f"{value:.2f}"
    return escape(str(value))


def el(name: str, value, *, nil_if_none: bool = True) -> str:
    """``<Name>value</Name>``; ``<Name i:nil="true"/>`` for None (``i`` is declared above)."""
    if value is None:
        return f'<{name} i:nil="true"/>' if nil_if_none else ""
    return f"<{name}>{x(value)}</{name}>"


def opt(name: str, value) -> str:
    """An element that is left out when the value is None."""
    return "" if value is None else f"<{name}>{x(value)}</{name}>"


def envelope(body: str, tracking_id: str, header_ns: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>'
            f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header>'
            f'<h:TrackingId xmlns:h="{header_ns}">{escape(tracking_id)}</h:TrackingId>'
            f"</s:Header><s:Body>{body}</s:Body></s:Envelope>").encode()


@dataclass
class BatchError:
    """One item's error in PartialErrors (or BatchErrors), with its zero-based Index."""

    index: int
    code: int
    error_code: str
    message: str
    field_path: str | None = None
    details: str | None = None

    def xml(self) -> str:
        return ("<BatchError>"
                f"<Code>{self.code}</Code>{el('Details', self.details)}"
                f"<ErrorCode>{x(self.error_code)}</ErrorCode>{el('FieldPath', self.field_path)}"
                f'<ForwardCompatibilityMap xmlns:a="{GENERIC_NS}"/>'
                f"<Index>{self.index}</Index><Message>{x(self.message)}</Message>"
                "<Type>BatchError</Type></BatchError>")

    def as_dict(self) -> dict:
        return {"index": self.index, "code": self.code, "error_code": self.error_code,
                "message": self.message}


def partial_errors(errors: Sequence[BatchError]) -> str:
    if not errors:
        return f'<PartialErrors xmlns:i="{XSI}"/>'
    return (f'<PartialErrors xmlns:i="{XSI}">' + "".join(e.xml() for e in errors)
            + "</PartialErrors>")


@dataclass
class ErrorItem:
    code: int
    error_code: str
    message: str
    detail: str | None = None


@dataclass
class SoapFault(Exception):
    """A fault to answer with: AdApiFaultDetail, ApiFaultDetail (CM) or ApiFault (Customer)."""

    kind: str  # "adapi" | "api" | "customer_api" | "deserialization" | "action"
    errors: list[ErrorItem] = field(default_factory=list)
    batch_errors: list[BatchError] = field(default_factory=list)
    http_status: int | None = None  # None: the emulator's fault_http_status setting
    faultstring: str | None = None

    def __str__(self) -> str:
        return ", ".join(f"{e.code} {e.error_code}" for e in self.errors) or self.kind

    def body(self, tracking_id: str) -> bytes:
        faultcode = "s:Server"
        faultstring = self.faultstring or FAULT_STRING.format(tracking_id=tracking_id)
        if self.kind == "adapi":
            detail = (f'<AdApiFaultDetail xmlns="{ADAPI_NS}" xmlns:i="{XSI}">'
                      f"<TrackingId>{x(tracking_id)}</TrackingId><Errors>"
                      + "".join("<AdApiError>"
                                f"<Code>{e.code}</Code>{el('Detail', e.detail)}"
                                f"<ErrorCode>{x(e.error_code)}</ErrorCode>"
                                f"<Message>{x(e.message)}</Message></AdApiError>"
                                for e in self.errors)
                      + "</Errors></AdApiFaultDetail>")
        elif self.kind == "api":
            batch = ("<BatchErrors/>" if not self.batch_errors else
                     "<BatchErrors>" + "".join(b.xml() for b in self.batch_errors)
                     + "</BatchErrors>")
            detail = (f'<ApiFaultDetail xmlns="{CM_NS}" xmlns:i="{XSI}">'
                      f'<TrackingId xmlns="{ADAPI_NS}">{x(tracking_id)}</TrackingId>{batch}'
                      "<OperationErrors>"
                      + "".join("<OperationError>"
                                f"<Code>{e.code}</Code>{el('Details', e.detail)}"
                                f"<ErrorCode>{x(e.error_code)}</ErrorCode>"
                                f"<Message>{x(e.message)}</Message></OperationError>"
                                for e in self.errors)
                      + "</OperationErrors></ApiFaultDetail>")
        elif self.kind == "customer_api":
            detail = (f'<ApiFault xmlns="{CUSTOMER_EXCEPTION_NS}" xmlns:i="{XSI}">'
                      f'<TrackingId xmlns="{ADAPI_NS}">{x(tracking_id)}</TrackingId>'
                      "<OperationErrors>"
                      + "".join("<OperationError>"
                                f"<Code>{e.code}</Code>{el('Details', e.detail)}"
                                f"<Message>{x(e.message)}</Message></OperationError>"
                                for e in self.errors)
                      + "</OperationErrors></ApiFault>")
        else:
            # What WCF sends when it cannot read the message (bad enum, unknown action).
            faultcode = ("a:DeserializationFailed" if self.kind == "deserialization"
                         else "a:ActionNotSupported")
            message = self.errors[0].message if self.errors else "The request is invalid."
            faultstring = message
            detail = ('<ExceptionDetail xmlns="http://schemas.datacontract.org/2004/07/'
                      'System.ServiceModel" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
                      '<HelpLink i:nil="true"/><InnerException i:nil="true"/>'
                      f"<Message>{x(message)}</Message><StackTrace i:nil=\"true\"/>"
                      "<Type>System.ServiceModel.Dispatcher.NetDispatcherFaultException</Type>"
                      "</ExceptionDetail>")
        ns_a = ' xmlns:a="http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation' \
               '/dispatcher"' if faultcode.startswith("a:") else ""
        return ('<?xml version="1.0" encoding="utf-8"?>'
                f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><s:Fault>'
                f"<faultcode{ns_a}>{faultcode}</faultcode>"
                f'<faultstring xml:lang="en-US">{x(faultstring)}</faultstring>'
                f"<detail>{detail}</detail></s:Fault></s:Body></s:Envelope>").encode()


def adapi_fault(code: int, error_code: str, message: str, http_status: int | None = None
                ) -> SoapFault:
    return SoapFault("adapi", [ErrorItem(code, error_code, message)], http_status=http_status)


def operation_fault(code: int, error_code: str, message: str,
                    batch_errors: Iterable[BatchError] = ()) -> SoapFault:
    return SoapFault("api", [ErrorItem(code, error_code, message)],
                     batch_errors=list(batch_errors))


_WS = re.compile(r"\s+")


def xs_list(value: str | None) -> list[str]:
    """An ``xs:list`` value (space separated), e.g. ConversionGoalTypes."""
    return [v for v in _WS.split(value or "") if v]
