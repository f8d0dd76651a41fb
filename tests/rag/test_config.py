from pathlib import Path

import pytest

from rag.config import ConfigError, Settings


def test_defaults():
    settings = Settings.resolve({}, env={})
    assert settings.index_dir == Path("rag-index")
    assert settings.embed_model is None  # an index keeps its own; new ones get multilingual-e5-small


def test_flags_beat_env_beat_file_beat_defaults(tmp_path: Path):
    config = tmp_path / "rag.toml"
    config.write_text('index_dir = "from-file"\nembed_model = "file-model"\nchunk_size = 123\nreranker = "file-rr"\n')
    env = {"RAG_CONFIG": str(config), "RAG_INDEX": "from-env", "RAG_EMBED_MODEL": "env-model"}
    settings = Settings.resolve({"index_dir": Path("from-flag"), "chunk_size": None}, env=env)
    assert settings.index_dir == Path("from-flag")
    assert settings.embed_model == "env-model"
    assert settings.chunk_size == 123
    assert settings.reranker == "file-rr"


@pytest.mark.parametrize(
    "flags, message",
    [({"chunk_size": "big"}, "chunk_size='big' is not valid"),
     ({"chunk_size": 10, "chunk_overlap": 10}, "chunk_overlap must be"),
     ({"colour": "blue"}, "unknown setting 'colour'")],
)
def test_bad_settings_are_named(flags, message):
    with pytest.raises(ConfigError, match=message):
        Settings.resolve(flags, env={})


def test_broken_config_file_is_named(tmp_path: Path):
    config = tmp_path / "rag.toml"
    config.write_text("index_dir = [unclosed")
    with pytest.raises(ConfigError, match="rag.toml: not valid TOML"):
        Settings.resolve({}, env={"RAG_CONFIG": str(config)})
