"""The shape cache of the pre-issuance lint refuses exactly what the full pkilint lint refuses.

The differential test draws a couple of thousand certificates from `lint_cases` (a few
structures, values drawn broadly, bad ones included) and asks both: the cached path, after the
first certificate of each shape, answers from its cache, so a value check it lacked would show
as a disagreement. bench/lint_cache.py runs the same comparison on many more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings

from certforge.issuer import lint
from certforge.issuer.lint_shape import shape_of
from lint_cases import certificates

# the generated names are over cryptography's length limits on purpose (pkilint judges them)
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")


def test_cached_lint_refuses_exactly_what_full_lint_refuses() -> None:
    cache = lint.LintCache()
    refused = 0

    @settings(
        max_examples=1000,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(certificates())
    def agree(cert: x509.Certificate) -> None:
        nonlocal refused
        full = lint.lint_errors(cert)
        assert cache.errors(cert) == full
        refused += bool(full)

    agree()
    # both paths were exercised: answers from the cache, and refusals among them
    assert cache.hits > 300, (cache.hits, cache.misses)
    assert refused > 100


_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())


def _leaf(
    cn: str, dns: list[str], *, days: int = 90, start: datetime | None = None
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    start = start or datetime(2026, 12, 2, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(_ISSUER_KEY.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False)
        .sign(_ISSUER_KEY, hashes.SHA256())
    )


def test_certificates_of_one_profile_share_a_shape_whatever_their_names() -> None:
    cache = lint.LintCache()
    for i in range(5):
        assert cache.errors(_leaf(f"host{i}.example.com", [f"host{i}.example.com"])) == []
    assert (cache.misses, cache.hits) == (1, 4)


def test_a_value_pkilint_refuses_is_another_shape_and_refused() -> None:
    cache = lint.LintCache()
    assert cache.errors(_leaf("a.example.com", ["a.example.com"])) == []
    bad = _leaf("b.example.com", ["b..example.com"])
    assert shape_of(bad) != shape_of(_leaf("a.example.com", ["a.example.com"]))
    assert cache.errors(bad) == ["pkix.invalid_domain_name_syntax"] == lint.lint_errors(bad)
    long_cn = _leaf("x" * 65, ["c.example.com"])
    assert cache.errors(long_cn) == lint.lint_errors(long_cn) != []
    late = _leaf("d.example.com", ["d.example.com"], start=datetime(2050, 1, 1, tzinfo=UTC))
    assert shape_of(late) != shape_of(_leaf("a.example.com", ["a.example.com"]))


def test_a_wildcard_is_tolerated_per_certificate_not_per_shape() -> None:
    """The tolerated false positive is judged on each certificate's own names: a cached
    verdict for `*.a.example.com` does not excuse `*.bad_name.example.com`."""
    cache = lint.LintCache()
    assert cache.errors(_leaf("w", ["*.a.example.com"])) == []
    assert cache.errors(_leaf("w", ["*.bad_name.example.com"])) == [
        "pkix.invalid_domain_name_syntax"
    ]
    assert cache.hits == 1


def test_the_cache_is_bounded_and_size_zero_lints_everything() -> None:
    cache = lint.LintCache(size=2)
    for days in (10, 20, 30, 40):  # same shape whatever the length: one entry
        cache.errors(_leaf("e.example.com", ["e.example.com"], days=days))
    for year in (2026, 2049, 2050):  # three shapes (time types) through a cache of two
        start = datetime(year, 1, 1, tzinfo=UTC)
        cache.errors(_leaf("e.example.com", ["e.example.com"], start=start))
    assert len(cache._verdicts) == 2
    off = lint.LintCache(size=0)
    off.errors(_leaf("f.example.com", ["f.example.com"]))
    off.errors(_leaf("f.example.com", ["f.example.com"]))
    assert (off.hits, off.misses) == (0, 2)
