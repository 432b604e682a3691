"""Dataset cards: render ``cards/dataset_card.md.j2`` through huggingface_hub's ``DatasetCard``.

The card's YAML declares one config per published subset (``default`` on the first), a WebDataset
config beside each subset published as tars, and ``scores`` (one split per subset); ``dataset_info``
gives features and splits for each, so no loader has to infer them. Licences follow the subset:
DiverSeg-I/-IP (ImageNet terms, non-commercial, gated), DiverSeg-P (CC-BY-4.0), else user-given.

Example:
    >>> license_for("P", None, None)["license"]
    'cc-by-4.0'
    >>> size_category(259_000)
    '100K<n<1M'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DiversegError
from ..files import write_bytes_atomic
from ..storage import DatasetDir, better_of
from ..version import __version__

TEMPLATE = "dataset_card.md.j2"

_IMAGENET_NOTE = (
    "Images come from ImageNet and are provided under the ImageNet terms of access: non-commercial "
    "research and educational use only, no redistribution. Access is gated; by requesting access you "
    "agree to those terms (https://image-net.org/download.php)."
)
_PASS_NOTE = "Images come from PASS (https://www.robots.ox.ac.uk/~vgg/data/pass/), released under CC-BY-4.0."

#: Licence presets by config name (the DiverSeg subsets).
LICENSE_PRESETS: dict[str, dict[str, Any]] = {
    "I": {"license": "other", "license_text": "ImageNet terms (non-commercial)", "gated": True,
          "license_note": _IMAGENET_NOTE},
    "IP": {"license": "other", "license_text": "ImageNet terms (non-commercial) + CC-BY-4.0", "gated": True,
           "license_note": _IMAGENET_NOTE + " " + _PASS_NOTE},
    "P": {"license": "cc-by-4.0", "license_text": "CC-BY-4.0", "gated": False, "license_note": _PASS_NOTE},
}


def license_for(name: str, license: str | None, gated: bool | None) -> dict[str, Any]:
    """Licence fields of config ``name``: a preset (I, P, IP), or the user-given ``license``."""
    preset = dict(LICENSE_PRESETS.get(name.removeprefix("DiverSeg-"), {}))
    if license:
        preset = {"license": license, "license_text": license, "gated": False,
                  "license_note": f"Licence given by the publisher: `{license}`. Check the source's terms."}
        if license.startswith("other:"):  # a custom licence (cards.licenses.check_license): Hub id other + name
            preset.update(license="other", license_name=license.removeprefix("other:"))
    if not preset:
        preset = {"license": "unknown", "license_text": "unknown", "gated": False,
                  "license_note": "No licence was given; the images keep their source's terms."}
    if gated is not None:
        preset["gated"] = gated
    return preset


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` examples."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def template_path() -> Path:
    """The card template, shipped beside this module."""
    return Path(__file__).resolve().parent / TEMPLATE


def yaml_module(configs: list[dict[str, Any]]) -> str:
    """The one builder ``datasets`` uses for a folder: that of the first config's data files."""
    return configs[0]["yaml_configs"][0]["module"] if configs else "parquet"


def card_yaml(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """The YAML mapping (configs, dataset_info, licences, tags) for the registered ``configs``.

    ``datasets`` picks a single builder for a whole folder from its first config, so only configs
    of that kind (and ``scores`` when it is Parquet) are declared; the card shows how to load others.
    """
    module = yaml_module(configs)
    yaml_configs: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    for c in configs:
        declared = {e["config_name"] for e in c["yaml_configs"] if e["module"] == module}
        for entry in c["yaml_configs"]:
            if entry["config_name"] in declared:
                item = {"config_name": entry["config_name"], "data_files": entry["data_files"]}
                if not yaml_configs:
                    item["default"] = True
                yaml_configs.append(item)
        infos.extend(i for i in c["dataset_info"] if i["config_name"] in declared)
    scores = [c["scores"] for c in configs if c.get("scores")]
    if scores and module == "parquet":
        yaml_configs.append({"config_name": "scores",
                             "data_files": [{"split": s["split"], "path": s["path"]} for s in scores]})
        infos.append({"config_name": "scores", "features": scores[0]["features"],
                      "splits": [s["split_info"] for s in scores]})
    licenses = list(dict.fromkeys(c["license"] for c in configs))
    data: dict[str, Any] = {
        "license": licenses[0] if len(licenses) == 1 else licenses,
        "task_categories": ["image-to-image"],
        "tags": ["super-resolution", "image-super-resolution", "diverseg"],
        "size_categories": [size_category(sum(c["num_examples"] for c in configs))],
        "pretty_name": "DiverSeg-style super-resolution training images",
        "configs": yaml_configs,
        "dataset_info": infos,
    }
    if "other" in licenses:
        named = [c["license_name"] for c in configs if c.get("license_name")]
        data["license_name"] = "imagenet-terms" if any(c["name"] in ("I", "IP") for c in configs) else \
            (named or ["other"])[0]
        data["license_link"] = "https://image-net.org/download.php" if data["license_name"] == "imagenet-terms" \
            else "LICENSE"
    if any(c["gated"] for c in configs):
        gated = ", ".join(c["name"] for c in configs if c["gated"])
        data["extra_gated_prompt"] = (
            f"Configs {gated}: images under their source's non-commercial terms. "
            "By requesting access you agree to use them for non-commercial research and education only."
        )
    return data


def card_text(dataset_dir: str | Path, configs: list[dict[str, Any]] | None = None, repo: str | None = None) -> str:
    """The card of the dataset folder ``dataset_dir`` for its registered ``configs`` (default: the registry's).

    With ``repo`` (a Hub dataset id) every loading example reads from the Hub (``diverseg push`` uploads this
    text for its repo); without, they read the folder by its name, from the folder that contains it. No path
    of the publishing machine appears in the text.

    Example:
        >>> card_text("/no/such/dir", [])
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/such/dir has no published configs
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    dataset_dir = Path(dataset_dir)
    configs = DatasetDir(dataset_dir).configs() if configs is None else configs
    if not configs:
        raise DiversegError(f"{dataset_dir} has no published configs")
    folder = dataset_dir.resolve().name
    card_data = DatasetCardData(**card_yaml(configs))
    scores_rows = sum(c["scores"]["split_info"]["num_examples"] for c in configs if c.get("scores"))
    where = (f"From the Hub (`{repo}`; log in first with `hf auth login` if the repo is gated or private):" if repo
             else f"From the folder that contains `{folder}/` (or pass the folder's path instead of `\"{folder}\"`):")
    card = DatasetCard.from_template(
        card_data,
        template_path=str(template_path()),
        pretty_name=card_data.pretty_name,
        configs=configs,
        has_scores=scores_rows > 0,
        scores_rows=scores_rows,
        any_wds=any(c.get("wds_config") for c in configs),
        module=yaml_module(configs),
        repo=repo or folder,
        hub=bool(repo),
        where=where,
        files_prefix=f"hf://datasets/{repo}/" if repo else f"{folder}/",
        package_version=__version__,
        better=better_of,
    )
    return str(card)


def render_card(dataset_dir: str | Path, configs: list[dict[str, Any]], repo: str | None = None) -> Path:
    """Write the card of the dataset folder ``dataset_dir`` for the registered ``configs`` (see :func:`card_text`)."""
    path = DatasetDir(dataset_dir).card_path
    write_bytes_atomic(path, card_text(dataset_dir, configs, repo).encode("utf-8"))
    return path
