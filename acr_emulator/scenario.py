"""Compact scenario JSON -> a populated Registry with real, digest-verifiable manifests.

Every manifest body, config and layer blob is generated deterministically from the repository
name and the manifest's id, so a scenario always yields the same digests. See README.md for the
format, with an example per feature.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .state import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    Registry,
    Repository,
    sha256_digest,
)

EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
KINDS = ("image", "docker", "index", "list", "artifact", "cosign", "unknown")
_REL = re.compile(r"^([+-])(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message names the offending field."""


def parse_time(value: Any, now: float, where: str) -> float:
    """Absolute ISO-8601 (`2024-01-31T10:00:00Z`) or relative to now (`-40d`, `-1d12h`, `-5m`)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        raise ScenarioError(f"{where}: expected a time like '-40d' or '2024-01-31T10:00:00Z'")
    m = _REL.match(value)
    if m and any(m.group(i) for i in range(2, 6)):
        d, h, mi, s = (int(m.group(i) or 0) for i in range(2, 6))
        delta = d * 86400 + h * 3600 + mi * 60 + s
        return now - delta if m.group(1) == "-" else now + delta
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ScenarioError(
            f"{where}: {value!r} is not a time; use e.g. '-40d', '-5m', '-1d12h' "
            "or '2024-01-31T10:00:00Z'"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _attrs(spec: dict[str, Any], where: str) -> dict[str, bool]:
    attrs = {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}
    if spec.get("locked"):
        attrs["deleteEnabled"] = attrs["writeEnabled"] = False
    extra = spec.get("changeableAttributes") or {}
    for key, val in extra.items():
        if key not in attrs or not isinstance(val, bool):
            raise ScenarioError(
                f"{where}.changeableAttributes: {key!r} must be one of {sorted(attrs)} with a "
                "true/false value"
            )
        attrs[key] = val
    return attrs


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


class _Builder:
    def __init__(self, registry: Registry, now: float) -> None:
        self.registry = registry
        self.now = now

    def blob(self, repo: Repository, data: bytes) -> dict[str, Any]:
        digest = self.registry.put_blob(data)
        repo.blobs.add(digest)
        return {"digest": digest, "size": len(data)}

    def build_repo(self, name: str, spec: dict[str, Any]) -> None:
        where = f"repositories[{name!r}]"
        if not isinstance(spec, dict):
            raise ScenarioError(f"{where}: expected an object with 'manifests'")
        unknown = set(spec) - {"manifests", "generate", "locked", "changeableAttributes"}
        if unknown:
            raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
        repo = self.registry.ensure_repo(name, self.now)
        repo.attrs = _attrs(spec, where)
        specs = list(spec.get("manifests") or [])
        ids: dict[str, tuple[dict[str, Any], str]] = {}
        for i, m in enumerate(specs):
            mw = f"{where}.manifests[{i}]"
            if not isinstance(m, dict):
                raise ScenarioError(f"{mw}: expected an object")
            mid = m.get("id", f"m{i}")
            if mid in ids:
                raise ScenarioError(f"{mw}: duplicate id {mid!r}")
            ids[mid] = (m, mw)
        built: dict[str, str] = {}
        for mid in ids:
            self.build_manifest(repo, mid, ids, built, ())
        gen = spec.get("generate")
        if gen is not None:
            self.generate(repo, gen, f"{where}.generate")
        if repo.is_empty():
            self.registry.drop_if_empty(name)

    def build_manifest(
        self,
        repo: Repository,
        mid: str,
        ids: dict[str, tuple[dict[str, Any], str]],
        built: dict[str, str],
        chain: tuple[str, ...],
        inline: tuple[dict[str, Any], str] | None = None,
        parent: dict[str, Any] | None = None,
    ) -> str:
        if mid in built:
            return built[mid]
        if mid in chain:
            raise ScenarioError(f"manifest id {mid!r} refers to itself through {list(chain)}")
        if inline is not None:
            spec, where = inline
        elif mid in ids:
            spec, where = ids[mid]
        else:
            raise ScenarioError(f"{chain[-1] if chain else repo.name}: unknown manifest id {mid!r}")
        kind = spec.get("kind", "image")
        if kind not in KINDS:
            raise ScenarioError(f"{where}.kind: {kind!r} is not one of {list(KINDS)}")
        inherit = parent or {}
        created = parse_time(
            spec.get("created", spec.get("updated", inherit.get("_created", "-0s"))),
            self.now,
            f"{where}.created",
        )
        updated = parse_time(
            spec.get("updated", inherit.get("_updated", spec.get("created", "-0s"))),
            self.now,
            f"{where}.updated",
        )
        seed = f"{repo.name}/{mid}/{spec.get('seed', '')}"
        body, media_type, extra = self.body_for(
            repo,
            mid,
            spec,
            kind,
            seed,
            ids,
            built,
            chain,
            where,
            {"_created": created, "_updated": updated},
        )
        digest = sha256_digest(body)
        info = self.registry.describe(body, media_type)
        m = Manifest(
            digest=digest,
            body=body,
            media_type=media_type,
            created=created,
            updated=updated,
            config_media_type=info.get("config_media_type"),
            artifact_type=info.get("artifact_type"),
            subject=info.get("subject"),
            references=info["references"],
            architecture=extra.get("architecture"),
            os=extra.get("os"),
            image_size=int(spec.get("size", info["image_size"])),
            attrs=_attrs(spec, where),
            annotations=info["annotations"],
            corrupt=bool(spec.get("corrupt", False)),
            unreadable=bool(spec.get("unreadable", False)),
        )
        repo.add_manifest(m)
        built[mid] = digest
        tags = list(spec.get("tags") or [])
        if kind == "cosign":
            target = built[spec["target"]]
            tags.append(f"{target.replace(':', '-')}.{spec.get('suffix', 'sig')}")
        for j, t in enumerate(tags):
            tw = f"{where}.tags[{j}]"
            tspec = {"name": t} if isinstance(t, str) else t
            if not isinstance(tspec, dict) or not isinstance(tspec.get("name"), str):
                raise ScenarioError(f"{tw}: a tag is a name or an object with 'name'")
            t_upd = parse_time(tspec.get("updated", updated), self.now, f"{tw}.updated")
            t_cre = parse_time(tspec.get("created", t_upd), self.now, f"{tw}.created")
            if tspec["name"] in repo.tags:
                raise ScenarioError(f"{tw}: tag {tspec['name']!r} is used twice")
            tag = repo.set_tag(tspec["name"], digest, t_upd, created=t_cre)
            tag.attrs = _attrs(tspec, tw)
        return digest

    def body_for(
        self,
        repo: Repository,
        mid: str,
        spec: dict[str, Any],
        kind: str,
        seed: str,
        ids: dict[str, tuple[dict[str, Any], str]],
        built: dict[str, str],
        chain: tuple[str, ...],
        where: str,
        times: dict[str, Any],
    ) -> tuple[bytes, str, dict[str, Any]]:
        extra: dict[str, Any] = {}
        doc: dict[str, Any]
        if kind in ("image", "docker", "cosign"):
            platform = str(spec.get("platform", "linux/amd64"))
            os_name, _, arch = platform.partition("/")
            arch, _, variant = arch.partition("/")
            extra = {"architecture": arch or "amd64", "os": os_name}
            docker = kind == "docker"
            layer_type = DOCKER_LAYER if docker else OCI_LAYER
            if kind == "cosign":
                layer_type = COSIGN_LAYER
            layers = [
                self.blob(repo, hashlib.sha256(f"{seed}/layer{i}".encode()).digest() * 4)
                for i in range(int(spec.get("layers", 1)))
            ]
            cfg = {
                "architecture": extra["architecture"],
                "os": os_name,
                "seed": seed,
                "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
            }
            if variant:
                cfg["variant"] = variant
            config = self.blob(repo, _dump(cfg))
            media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
            doc = {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, **config},
                "layers": [{"mediaType": layer_type, **x} for x in layers],
            }
        elif kind in ("index", "list"):
            media_type = OCI_INDEX if kind == "index" else DOCKER_LIST
            children = []
            for k, child in enumerate(spec.get("children") or []):
                cw = f"{where}.children[{k}]"
                if isinstance(child, str):
                    cid, cspec = child, ids.get(child, (None, ""))[0]
                    d = self.build_manifest(repo, cid, ids, built, (*chain, mid))
                elif isinstance(child, dict):
                    cid = child.get("id", f"{mid}.{k}")
                    cspec = child
                    d = self.build_manifest(
                        repo, cid, ids, built, (*chain, mid), (child, cw), times
                    )
                else:
                    raise ScenarioError(f"{cw}: a child is a manifest id or an inline manifest")
                cm = repo.manifests[d]
                entry: dict[str, Any] = {
                    "mediaType": cm.media_type,
                    "digest": d,
                    "size": len(cm.body),
                }
                if cm.architecture:
                    entry["platform"] = {"architecture": cm.architecture, "os": cm.os}
                elif cspec and cspec.get("platform"):
                    o, _, a = str(cspec["platform"]).partition("/")
                    entry["platform"] = {"architecture": a, "os": o}
                children.append(entry)
            doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
        elif kind == "artifact":
            media_type = OCI_MANIFEST
            payload = self.blob(repo, f"{seed}/payload".encode())
            empty = self.blob(repo, b"{}")
            doc = {
                "schemaVersion": 2,
                "mediaType": media_type,
                "artifactType": spec.get("artifactType", "application/vnd.example.sbom.v1+json"),
                "config": {"mediaType": EMPTY_CONFIG, **empty},
                "layers": [{"mediaType": "application/octet-stream", **payload}],
            }
        else:  # unknown
            media_type = str(spec.get("mediaType", "application/vnd.example.unknown.v1+json"))
            doc = {"schemaVersion": 2, "mediaType": media_type, "seed": seed}
        if "subject" in spec:
            sid = spec["subject"]
            sd = self.build_manifest(repo, sid, ids, built, (*chain, mid))
            sm = repo.manifests[sd]
            doc["subject"] = {"mediaType": sm.media_type, "digest": sd, "size": len(sm.body)}
        if kind == "cosign":
            if spec.get("target") is None:
                raise ScenarioError(f"{where}.target: a cosign manifest needs the id it signs")
            self.build_manifest(repo, spec["target"], ids, built, (*chain, mid))
        if spec.get("annotations"):
            doc["annotations"] = spec["annotations"]
        return _dump(doc), media_type, extra

    def generate(self, repo: Repository, gen: dict[str, Any], where: str) -> None:
        """Bulk content for benchmarks: `count` single-tag images spaced `step` apart."""
        count = int(gen.get("count", 0))
        prefix = str(gen.get("tagPrefix", "build-"))
        start = parse_time(gen.get("start", "-100d"), self.now, f"{where}.start")
        step = parse_time("+" + str(gen.get("step", "1m")), 0.0, f"{where}.step")
        layer = self.blob(repo, f"{repo.name}/generated-layer".encode())
        for i in range(count):
            when = start + i * step
            cfg = self.blob(repo, _dump({"architecture": "amd64", "os": "linux", "n": i}))
            doc = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, **cfg},
                "layers": [{"mediaType": OCI_LAYER, **layer}],
            }
            body = _dump(doc)
            digest = sha256_digest(body)
            m = Manifest(
                digest,
                body,
                OCI_MANIFEST,
                when,
                when,
                config_media_type=OCI_CONFIG,
                architecture="amd64",
                os="linux",
                image_size=len(body) + cfg["size"] + layer["size"],
            )
            repo.add_manifest(m)
            repo.set_tag(f"{prefix}{i}", digest, when, created=when)


def load(
    scenario: dict[str, Any] | str | Path | None, registry: Registry | None = None
) -> Registry:
    """Build a Registry from a scenario dict or JSON file (None: an empty registry)."""
    if isinstance(scenario, (str, Path)):
        try:
            scenario = json.loads(Path(scenario).read_text())
        except (OSError, ValueError) as exc:
            raise ScenarioError(f"scenario file {scenario}: {exc}") from None
    registry = registry or Registry()
    if scenario is None:
        return registry
    if not isinstance(scenario, dict):
        raise ScenarioError("scenario: expected a JSON object with 'repositories'")
    unknown = set(scenario) - {"now", "repositories", "description"}
    if unknown:
        raise ScenarioError(f"scenario: unknown keys {sorted(unknown)}")
    now = registry.now()
    if "now" in scenario:
        now = parse_time(scenario["now"], now, "now")
    builder = _Builder(registry, now)
    repos = scenario.get("repositories") or {}
    if not isinstance(repos, dict):
        raise ScenarioError("repositories: expected an object {name: {...}}")
    for name, spec in repos.items():
        builder.build_repo(name, spec)
    return registry


def manifest_digests(scenario: dict[str, Any]) -> dict[str, dict[str, str]]:
    """repository -> manifest id -> digest, as loading `scenario` builds them.

    Bodies are deterministic (repository + id), so a throwaway build names the digests a served
    registry holds: tests use it to write expectations by id instead of by digest.
    """
    registry = Registry()
    builder = _Builder(registry, registry.now())
    result: dict[str, dict[str, str]] = {}
    for name, spec in (scenario.get("repositories") or {}).items():
        repo = registry.ensure_repo(name, registry.now())
        ids = {m["id"]: (m, f"{name}.manifests[{i}]") for i, m in enumerate(spec["manifests"])}
        built: dict[str, str] = {}
        for mid in ids:
            builder.build_manifest(repo, mid, ids, built, ())
        result[name] = built
    return result
