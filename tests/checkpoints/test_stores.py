"""Checkpoint stores: one contract for the folder, S3 (moto server) and Cloud Storage (fake)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_tasks.domain.validation import checkpoint_location_problem
from cloud_tasks.entrypoints.worker.checkpoint import (
    Checkpoint,
    checkpoint_key,
    open_checkpoint_store,
)
from cloud_tasks.exceptions import ConfigError, ProviderError
from cloud_tasks.ports import CheckpointStore
from tests.fakes.gcs import FakeGcs
from tests.servers import moto_server  # noqa: F401  (fixture)


@pytest.fixture
def fake_gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcs]:
    server = FakeGcs().start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["folder", "s3", "gs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStore:
    if request.param == "folder":
        from cloud_tasks.adapters.local.checkpoints import FolderCheckpointStore

        return FolderCheckpointStore(tmp_path / "ckpt")
    if request.param == "s3":
        request.getfixturevalue("moto_server")
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="job-bucket")
        from cloud_tasks.adapters.aws.checkpoints import S3CheckpointStore

        return S3CheckpointStore("job-bucket", "jobs/j1/checkpoints")
    gcs: FakeGcs = request.getfixturevalue("fake_gcs")
    gcs.create_bucket("job-bucket")
    from cloud_tasks.adapters.gcp.checkpoints import GcsCheckpointStore

    return GcsCheckpointStore("job-bucket", "jobs/j1/checkpoints")


def test_store_contract(store: CheckpointStore) -> None:
    assert store.get("t1.checkpoint") is None
    store.delete("t1.checkpoint")  # deleting a missing key is not an error
    store.put("t1.checkpoint", b"first")
    assert store.get("t1.checkpoint") == b"first"
    store.put("t1.checkpoint", b"second, longer")
    assert store.get("t1.checkpoint") == b"second, longer"
    assert store.get("t2.checkpoint") is None
    store.delete("t1.checkpoint")
    assert store.get("t1.checkpoint") is None


def test_checkpoint_round_trips_python_objects(store: CheckpointStore) -> None:
    from cloud_tasks.entrypoints.worker import checkpoint as module

    module._stores[store.location] = store
    checkpoint = Checkpoint(store.location, "task/with spaces:1")
    assert checkpoint.load() is None
    assert checkpoint.load(default={"step": 0}) == {"step": 0}
    checkpoint.save({"step": 7, "partial": [1.5, 2.5]})
    assert checkpoint.load() == {"step": 7, "partial": [1.5, 2.5]}
    assert Checkpoint(store.location, "other").load() is None
    checkpoint.delete()
    assert checkpoint.load() is None


def test_s3_objects_live_under_the_prefix(moto_server: str) -> None:  # noqa: F811
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="job-bucket")
    store = open_checkpoint_store("s3://job-bucket/run-7")
    Checkpoint("s3://job-bucket/run-7", "t1").save([1, 2, 3])
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="job-bucket")["Contents"]]
    assert keys == ["run-7/" + checkpoint_key("t1")]
    assert store.location == "s3://job-bucket/run-7"


def test_gcs_objects_live_under_the_prefix(fake_gcs: FakeGcs) -> None:
    fake_gcs.create_bucket("job-bucket")
    from cloud_tasks.adapters.gcp.checkpoints import GcsCheckpointStore

    store = GcsCheckpointStore("job-bucket", "run-7")
    store.put(checkpoint_key("t1"), b"x")
    assert list(fake_gcs.objects) == [("job-bucket", "run-7/t1.checkpoint")]


def test_missing_bucket_is_one_clear_error(moto_server: str) -> None:  # noqa: F811
    from cloud_tasks.adapters.aws.checkpoints import S3CheckpointStore

    with pytest.raises(ProviderError, match=r"s3://no-such-bucket/p/t1.checkpoint.*no such bucket"):
        S3CheckpointStore("no-such-bucket", "p").put("t1.checkpoint", b"x")


def test_folder_store_never_leaves_a_partial_file(tmp_path: Path) -> None:
    from cloud_tasks.adapters.local.checkpoints import FolderCheckpointStore

    store = FolderCheckpointStore(tmp_path / "ckpt")
    store.put("t1.checkpoint", b"a" * 100_000)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["t1.checkpoint"]
    assert store.keys() == ["t1.checkpoint"]


def test_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    from cloud_tasks.adapters.local.checkpoints import FolderCheckpointStore

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ProviderError, match="choose a writable --checkpoint-location"):
        FolderCheckpointStore(blocker / "ckpt").put("t1.checkpoint", b"x")
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("location", "message"),
    [("ftp://host/x", "unknown scheme 'ftp'"), ("s3:///prefix", "no bucket")],
)
def test_bad_locations_are_config_errors(location: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_checkpoint_store(location)
    # The same words as the configuration check (domain.validation), naming the flag.
    text = str(caught.value)
    assert text == f"--checkpoint-location: {checkpoint_location_problem(location)}"
    assert message in text and location in text and "\n" not in text


def test_no_location_says_how_to_set_one() -> None:
    with pytest.raises(ConfigError) as caught:
        Checkpoint(None, "t1").save(1)
    text = str(caught.value)
    assert "--checkpoint-location" in text
    assert "RMS_CLOUD_TASKS_CHECKPOINT_LOCATION" in text
    assert "run.checkpoint_location" in text
    assert "\n" not in text
