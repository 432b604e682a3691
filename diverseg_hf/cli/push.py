"""``diverseg push``: upload a dataset folder to a Hub dataset repo (idempotent, resumable, all-or-nothing for
readers, the card rendered for the repo id, gated where a config's licence asks); the work is
:func:`diverseg_hf.hub.push.push`'s, this module only parses."""

from __future__ import annotations

import argparse
import sys

from ..errors import ParameterError
from ..hub.push import MAX_FILES_PER_COMMIT, PushResult, check_repo_id, push

EPILOG = """examples:
  diverseg push diverseg/ my-org/diverseg --private --gated manual
  diverseg push mysubset/ me/mysubset --revision dev --message "Add subset" --prune
  # token: HF_TOKEN or `hf auth login`; endpoint: HF_ENDPOINT. Re-running uploads only what changed.
  # A REPO_ID without a namespace is the token owner's. HF_HUB_DISABLE_PROGRESS_BARS=1 hides the bar.
  # then: datasets.load_dataset("my-org/diverseg", "I")"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push", help="upload a dataset folder to the Hugging Face Hub",
        description="Upload a dataset folder to a Hub dataset repo: data in bounded commits, the card last; "
                    "files already on the Hub are skipped.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", metavar="DATASET_DIR", help="dataset folder (from publish, curate or build)")
    parser.add_argument("repo_id", metavar="REPO_ID", type=repo_id_arg, help="Hub dataset repo, e.g. my-org/diverseg")
    parser.add_argument("--private", action="store_true", help="create the repo private (if it does not exist)")
    parser.add_argument("--revision", metavar="BRANCH", help="existing branch to push to (default main)")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--gated", choices=["auto", "manual"],
                        help="gate access to the repo: users must accept its terms, approved automatically (auto) "
                             "or by you (manual). Gating is a property of the whole repo, not of a config: "
                             "every config in it is gated; put configs under other terms in another repo. A folder "
                             "with a config under ImageNet terms (I, IP) gates a repo not gated yet (auto)")
    parser.add_argument("--prune", action="store_true",
                        help="delete files on the Hub branch that the folder does not have (.gitattributes kept; "
                             "shards a config of the card reads are always replaced, never left beside new ones)")
    parser.add_argument("--max-files-per-commit", type=int, default=MAX_FILES_PER_COMMIT, metavar="N",
                        help=f"files per early commit (default {MAX_FILES_PER_COMMIT}); the last commit carries every "
                             "change readers of the card see, all at once (docs/hub.md)")
    parser.set_defaults(func=run)


def add_push_to_hub_options(parser: argparse.ArgumentParser) -> None:
    """``--push-to-hub REPO_ID`` and ``--private`` for the commands that write a dataset folder."""
    group = parser.add_argument_group("Hub")
    group.add_argument("--push-to-hub", metavar="REPO_ID", type=repo_id_arg,
                       help="then upload the dataset folder to this Hub dataset repo (as diverseg push --prune)")
    group.add_argument("--private", action="store_true", help="create the Hub repo private")


def push_to_hub_from_args(args: argparse.Namespace, folder: str) -> None:
    """Push ``folder`` when ``--push-to-hub`` was given, as ``diverseg push --prune`` does."""
    if args.push_to_hub:
        report(push(folder, args.push_to_hub, private=args.private, prune=True))


def repo_id_arg(value: str) -> str:
    """argparse type of a Hub repo id: checked before any work."""
    try:
        return check_repo_id(value)
    except ParameterError as err:
        raise argparse.ArgumentTypeError(f"REPO_ID {err.problem}") from None


def report(result: PushResult) -> None:
    print(f"push: {len(result.uploaded)} files uploaded in {len(result.commits)} commits, "
          f"{len(result.skipped)} already on the Hub, {len(result.deleted)} deleted "
          f"-> datasets/{result.repo_id}@{result.revision}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    report(push(args.folder, args.repo_id, private=args.private, revision=args.revision, message=args.message,
                gated=args.gated, max_files_per_commit=args.max_files_per_commit, prune=args.prune))
    return 0
