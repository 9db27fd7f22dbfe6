"""Benchmark identity hashing: vectorised path vs a per-row implementation vs hashing alone.

Run: PYTHONPATH=. .venv/bin/python bench/identity.py [--rows N] [--seed S]
The last line is ``speedup: <vectorised rows/s / per-row rows/s>``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import random
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa

from include.msads_capi.identity import hash_identities

# Where customers live (the Space default region of their events), roughly a global advertiser.
REGIONS = {"US": 0.50, "GB": 0.12, "DE": 0.10, "FR": 0.08, "IN": 0.08, "BR": 0.06, "JP": 0.06}
DOMAINS = ["gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com", "web.de",
           "orange.fr", "yahoo.co.jp", "rediffmail.com", "uol.com.br", "example.com"]
FIRST = ["anna", "ben", "chloé", "david", "emma", "felix", "grace", "hiro", "isabel", "jan",
         "kavya", "lucas", "maria", "noah", "olivia", "pedro", "quinn", "ravi", "sofia", "tom"]
LAST = ["smith", "müller", "martin", "garcia", "sato", "silva", "patel", "brown", "dubois",
        "schmidt", "tanaka", "jones", "kumar", "costa", "wilson", "bernard", "weber", "ito"]


def _templates(region: str) -> list[tuple[list[str], list[list[int]]]]:
    """Formatted example numbers of a region and where six digits near their end sit."""
    out = []
    for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
        example = phonenumbers.example_number_for_type(region, kind)
        national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        forms = [
            national,  # as people write it at home
            "".join(ch for ch in national if ch.isdigit()),  # digits only
            national.replace(" ", "-"),
            phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164),
            phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
            phonenumbers.format_out_of_country_calling_number(example, "CH"),  # 00 prefix
            national + " ext. 12",
        ]
        # Vary up to six digits at the end of the number (before an extension), never the
        # area code: realistic, mostly valid numbers.
        vary = min(6, len(str(example.national_number)) - 3)
        spots = []
        for form in forms:
            digits = [i for i, ch in enumerate(form.split(" ext.")[0]) if ch.isdigit()]
            spots.append(digits[-vary:])
        out.append((forms, spots))
    return out


# National forms ~50% (three spellings), E.164 ~28%, international ~14%, 00-prefix 5%, ext 3%.
FORM_WEIGHTS = [0.30, 0.10, 0.10, 0.28, 0.14, 0.05, 0.03]


def generate(rows: int, seed: int) -> pd.DataFrame:
    """Realistic events: ~30% of rows are repeat customers, mixed formats, some gaps."""
    rng = random.Random(seed)
    templates = {r: _templates(r) for r in REGIONS}
    n_customers = max(1, int(rows * 0.7))
    region_names = list(REGIONS)
    customer_region = rng.choices(region_names, weights=list(REGIONS.values()), k=n_customers)
    emails: list[str | None] = []
    phones: list[str | None] = []
    for i, region in enumerate(customer_region):
        r = rng.random()
        if r < 0.10:
            emails.append(None)
        else:
            local = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{i}"
            email = f"{local}@{rng.choice(DOMAINS)}"
            if r < 0.25:
                email = email.title()
            elif r < 0.28:
                email = f"  {email} "
            elif r < 0.29:
                email = email.replace("@", " at ")
            emails.append(email)
        if rng.random() < 0.15:
            phones.append(None)
            continue
        forms, spots = rng.choice(templates[region])
        form = rng.choices(range(len(forms)), weights=FORM_WEIGHTS)[0]
        chars = list(forms[form])
        for pos, digit in zip(spots[form], f"{i % 1000000:06d}"[-len(spots[form]):], strict=True):
            chars[pos] = digit
        phones.append("".join(chars))
    pick = np.concatenate([np.arange(n_customers),
                           np.random.default_rng(seed).integers(0, n_customers,
                                                                rows - n_customers)])
    np.random.default_rng(seed + 1).shuffle(pick)
    clicks = np.random.default_rng(seed + 2).random(rows) < 0.4
    return pd.DataFrame({
        "email": pd.array([emails[k] for k in pick], dtype="str"),
        "phone": pd.array([phones[k] for k in pick], dtype="str"),
        "phone_region": pd.array([customer_region[k] for k in pick], dtype="str"),
        "msclkid": pd.array([f"{k:032x}" if c else None for k, c in zip(pick, clicks,
                                                                        strict=True)],
                            dtype="str"),
    })


def vectorised(frame: pd.DataFrame):
    return hash_identities(frame, email="email", phone="phone", region="phone_region",
                           click_id="msclkid")


def per_row(emails: list, phones: list, regions: list) -> list[tuple[str | None, str | None]]:
    """The straightforward way: strip and lower, phonenumbers, hashlib, one row at a time."""
    out = []
    e164 = phonenumbers.PhoneNumberFormat.E164
    for email, phone, region in zip(emails, phones, regions, strict=True):
        email_sha = phone_sha = None
        if email is not None:
            email = email.strip().lower()
            if "@" in email:
                email_sha = hashlib.sha256(email.encode("utf-8")).hexdigest()
        if phone is not None:
            try:
                number = phonenumbers.parse(phone, region)
                if phonenumbers.is_valid_number(number):
                    text = phonenumbers.format_number(number, e164)
                    phone_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
            except phonenumbers.NumberParseException:
                pass
        out.append((email_sha, phone_sha))
    return out


def hashing_only(emails: list, phones: list) -> tuple[list[str], list[str]]:
    """The ceiling: SHA-256 of every raw value present, no normalisation, no de-duplication."""
    sha256 = hashlib.sha256
    return ([sha256(v.encode("utf-8")).hexdigest() for v in emails if v is not None],
            [sha256(v.encode("utf-8")).hexdigest() for v in phones if v is not None])


REPEATS = 3  # best of three for the fast paths; the per-row path runs once (it takes ~25 s)


def _timed(fn, *args):
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    # Wall time, and the process's own CPU time (less stretched when the machine is busy).
    return result, time.perf_counter() - start, time.process_time() - cpu


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _own_peak_mib(fn, *args) -> float:
    """Peak memory one call adds: Python objects (tracemalloc) plus Arrow buffers."""
    gc.collect()
    pool = pa.default_memory_pool()
    arrow_before = pool.bytes_allocated()
    tracemalloc.start()
    fn(*args)
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arrow_peak = max(0, pool.max_memory() - arrow_before)
    return (python_peak + arrow_peak) / 2**20


def _machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{platform.machine()}, {model}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    frame = generate(args.rows, args.seed)
    emails = frame["email"].astype(object).where(frame["email"].notna(), None).tolist()
    phones = frame["phone"].astype(object).where(frame["phone"].notna(), None).tolist()
    regions = frame["phone_region"].tolist()
    n = len(frame)
    print(f"machine: {_machine()}")
    print(f"rows: {n:,}; distinct emails {frame['email'].nunique():,}, "
          f"distinct phones {frame['phone'].nunique():,}")

    # Warm up on a slice: imports, phonenumbers metadata and regex compilation are one-off costs.
    warm = slice(0, min(n, 2000))
    vectorised(frame.iloc[warm])
    hashing_only(emails[warm], phones[warm])
    per_row(emails[warm], phones[warm], regions[warm])
    # ... and once at full size, untimed: the first full-size calls of a process take up to
    # 1.5x the steady time while the allocators grow their arenas (1.80-2.09 s against
    # 1.37-1.49 s for the vectorised path here), and the pipeline calls it chunk after chunk.
    vectorised(frame)
    hashing_only(emails, phones)

    # The machine is shared: run the two fast paths alternately and keep the best of each.
    t_vec = t_hash = cpu_vec = cpu_hash = float("inf")
    for _ in range(REPEATS):
        result, elapsed, cpu = _timed(vectorised, frame)
        t_vec, cpu_vec = min(t_vec, elapsed), min(cpu_vec, cpu)
        _, elapsed, cpu = _timed(hashing_only, emails, phones)
        t_hash, cpu_hash = min(t_hash, elapsed), min(cpu_hash, cpu)
    rss_vec = _peak_rss_mib()
    rows_out, t_row, _ = _timed(per_row, emails, phones, regions)
    rss_all = _peak_rss_mib()

    # The per-row rules for phones are the same as ours: the digests must agree.
    theirs = pd.Series([p for _, p in rows_out], dtype="string")
    ours = result.frame["phone_sha256"].reset_index(drop=True)
    agree = float((theirs.fillna("") == ours.fillna("")).mean())
    vec_mib = _own_peak_mib(vectorised, frame)

    rate_vec, rate_row, rate_hash = n / t_vec, n / t_row, n / t_hash
    print(f"coverage: {result.coverage}")
    print(f"phone digests equal to the per-row implementation's: {agree:.4%}")
    print(f"vectorised (hash_identities), best of {REPEATS}:  {t_vec:7.2f} s "
          f"{rate_vec:11,.0f} rows/s")
    print(f"per-row (strip/lower, phonenumbers, sha):  {t_row:7.2f} s {rate_row:11,.0f} rows/s")
    print(f"hashing only (ceiling), best of {REPEATS}:       {t_hash:7.2f} s "
          f"{rate_hash:11,.0f} rows/s")
    print(f"vectorised / ceiling: {rate_vec / rate_hash:.2f}")
    # Both are single-threaded; other processes stretch wall time, less so CPU time.
    print(f"vectorised / ceiling in CPU time: {cpu_hash / cpu_vec:.2f} "
          f"({cpu_vec:.2f} s and {cpu_hash:.2f} s)")
    print(f"peak memory: vectorised call {vec_mib:,.0f} MiB (Python + Arrow); process peak RSS "
          f"{rss_vec:,.0f} MiB after vectorised, {rss_all:,.0f} MiB after all")
    # The fast paths are compared within one run; a busy machine still moves their ratio.
    print(f"load average (1 minute): {load_before:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} CPUs)")
    print(f"speedup: {rate_vec / rate_row:.2f}")


if __name__ == "__main__":
    main()
