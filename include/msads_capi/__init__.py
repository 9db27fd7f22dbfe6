"""msads-capi: conversion events from a PostgreSQL warehouse to Microsoft Advertising."""

from __future__ import annotations

__version__ = "0.1.0"
