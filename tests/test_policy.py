"""What a deployment run may ask of the worker (flows/policy.py), and the crawler's refusal of IPv6 addresses
that lead to a private IPv4 host (NAT64, 6to4, Teredo, IPv4-compatible)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curation.crawl import CrawlConfig, _address_allowed
from flows import policy
from flows.config import REPO_ROOT, UserError, resolve_config


def test_a_ui_run_of_the_demo_preset_asks_nothing_the_worker_must_allow():
    assert policy.problems(resolve_config("demo"), None, {}) == []
    assert policy.problems(resolve_config("tiny"), "/srv/store", {"LMPIPE_HOME": "/srv/store"}) == []


def test_private_crawling_needs_the_operator(tmp_path):
    cfg = resolve_config("tiny", {"crawl.allow_private": True})
    (found,) = policy.problems(cfg, None, {})
    assert "LMPIPE_ALLOW_PRIVATE_CRAWL=1" in found
    assert policy.problems(cfg, None, {"LMPIPE_ALLOW_PRIVATE_CRAWL": "1"}) == []
    nets = resolve_config("tiny", {"crawl.allow_networks": ["10.0.0.0/8"]})
    assert len(policy.problems(nets, None, {})) == 1


def test_files_outside_the_input_roots_are_refused_links_included(tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text('{"text": "x"}\n')
    cfg = resolve_config("tiny", None, [str(outside)])
    (found,) = policy.problems(cfg, None, {})
    assert found.startswith(f"inputs {outside} is outside the worker's input roots")
    assert policy.problems(cfg, None, {"LMPIPE_INPUT_ROOTS": str(tmp_path)}) == []
    # a link inside a root that points outside it is judged by its target
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.jsonl").symlink_to(outside)
    linked = resolve_config("tiny", None, [str(root / "link.jsonl")])
    assert len(policy.problems(linked, None, {"LMPIPE_INPUT_ROOTS": str(root)})) == 1
    labels = resolve_config("tiny", {"quality_model.labels": str(outside)})
    assert any(p.startswith("quality_model.labels") for p in policy.problems(labels, None, {}))
    with pytest.raises(UserError, match="refused by the worker: inputs"):
        policy.check(cfg, None, {})


def test_the_home_parameter_must_be_the_workers_store():
    cfg = resolve_config("tiny")
    (found,) = policy.problems(cfg, "/etc", {"LMPIPE_HOME": "/artifacts"})
    assert found.startswith("home /etc is not the worker's artifact store (/artifacts)")


def test_the_shipped_data_is_always_a_root():
    shipped = [(REPO_ROOT / "demo").resolve(), (REPO_ROOT / "curation" / "models").resolve()]
    assert policy.input_roots({}) == shipped
    assert policy.input_roots({"LMPIPE_INPUT_ROOTS": os.pathsep.join(["/data/a", "/data/b"])}) == [
        Path("/data/a").resolve(), Path("/data/b").resolve(), *shipped]


@pytest.mark.parametrize("address, allowed", [
    ("64:ff9b::a00:1", False),        # NAT64 well-known prefix -> 10.0.0.1
    ("64:ff9b::808:808", True),       # NAT64 -> 8.8.8.8
    ("64:ff9b:1::a00:1", False),      # NAT64 local-use prefix -> 10.0.0.1
    ("2002:a00:1::1", False),         # 6to4 of 10.0.0.1
    ("2002:808:808::1", True),        # 6to4 of 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
    ("::ffff:127.0.0.1", False),      # IPv4-mapped loopback
    ("::10.0.0.1", False),            # IPv4-compatible (deprecated)
    ("::1", False),
    ("2606:4700::1111", True),
    ("fe80::1%eth0", False),
])
def test_ipv6_addresses_are_judged_by_the_ipv4_host_they_lead_to(address, allowed):
    assert _address_allowed(address, CrawlConfig()) is allowed
    assert _address_allowed(address, CrawlConfig(allow_private=True)) is True
