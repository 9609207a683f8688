"""Compose params.yaml from conf/ with Hydra, as `dvc exp run` does when hydra is enabled.

    python -m cybersentinel.mlops.params dataset=uci_phishing_websites model=xgboost
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cybersentinel.core.files import atomic_path


def compose_params(overrides: list[str], conf_dir: str | Path = "conf") -> str:
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        return OmegaConf.to_yaml(compose(config_name="config", overrides=overrides))


def main() -> None:
    text = compose_params(sys.argv[1:])
    with atomic_path("params.yaml") as tmp:
        tmp.write_text(text)
    print("params.yaml composed from conf/", " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
