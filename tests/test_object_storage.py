"""Images in object storage: the loader's listing, scan and reads against a real S3 server (moto) on loopback."""

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from s3_server import client, fill_bucket, jpeg, s3_server

from executors.docs import MAX_IMAGE_BYTES
from executors.errors import UserError
from executors.loader.storage import KNOWN_OBJECTS_ENV, ObjectScanner, fetch, filesystem, list_objects
from executors.urls import data_source as data_arg
from executors.urls import is_url
from imgsearch.datasource import check_data, data_name, data_ref, listing_digest
from imgsearch.grid import thumbnail
from imgsearch.web.thumbs import ThumbError, read_verified


@pytest.fixture
def s3(monkeypatch):
    with s3_server(monkeypatch) as server:
        yield server


def _scanner(tmp_path, max_bytes: int = MAX_IMAGE_BYTES) -> ObjectScanner:
    return ObjectScanner(max_bytes, str(tmp_path / "objects.sqlite"))


def test_urls_and_folders_are_told_apart(tmp_path):
    assert is_url("s3://bucket/prefix") and is_url("gs://b") and is_url("az://c/p")
    assert not is_url("data/memes") and not is_url("/abs/path") and not is_url("file:///abs/path")
    assert data_arg("s3://bucket/photos/") == "s3://bucket/photos"  # text: a Path would fold the '//'
    assert data_arg("data/memes") == data_arg("data/memes/")
    assert data_arg("file:///abs/photos") == Path("/abs/photos")  # a local folder, as is_url says
    assert data_arg("./odd://name") == Path("./odd://name")  # no scheme at the start: a folder
    assert data_name("s3://bucket/photos/2024") == "2024" and data_name("s3://bucket") == "bucket"
    assert data_ref("s3://bucket/photos") == "s3://bucket/photos"
    assert data_ref(tmp_path / "x" / "..") == str(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_a_missing_backend_names_the_package_to_install():
    with pytest.raises(ValueError, match="gcsfs"):
        filesystem("gs://bucket/prefix")
    with pytest.raises(UserError, match="gcsfs"):
        check_data("gs://bucket/prefix")
    with pytest.raises(UserError, match="Protocol not known"):
        check_data("nosuch://bucket/prefix")


def test_scan_labels_hashes_and_reasons_then_a_second_scan_fetches_nothing(s3, tmp_path):
    cases = fill_bucket(s3, "photos", "set", n_good=40)
    url = "s3://photos/set"
    objects = list_objects(url)
    assert {o.key for o in objects} == {k for k in cases if not k.startswith(".")}  # hidden keys left out
    assert [o.key for o in objects] == sorted(o.key for o in objects) and all(o.etag for o in objects)

    scanner = _scanner(tmp_path)
    docs = {d.uri.removeprefix(url + "/"): d for d in scanner.inspect(objects)}
    assert set(docs) == {k for k, v in cases.items() if v != "ignored"}  # the README is no image: left out
    scan_gets = s3.object_gets("photos")
    assert set(scan_gets) == {f"/photos/set/{k}" for k in cases if not k.startswith(".") and k != "label1/zero.jpg"}
    assert set(scan_gets.values()) == {1}  # each object fetched once; an empty one not at all
    s3_objects = client(s3)
    for key, outcome in cases.items():
        if outcome in ("ok", "truncated"):  # a truncated JPEG passes the scan; decoding reports it
            body = s3_objects.get_object(Bucket="photos", Key=f"set/{key}")["Body"].read()
            assert docs[key].hash == hashlib.sha256(body).hexdigest() and docs[key].error is None
            assert docs[key].size == len(body) and docs[key].mime == "image/jpeg"
            assert docs[key].label == key.split("/")[0]
        elif outcome != "ignored":
            assert outcome in docs[key].error and docs[key].hash is None, (key, docs[key].error)
    before = s3.object_gets("photos")  # the test's own reads included

    # A new scanner over the same cache (a restarted loader): nothing fetched, the same documents.
    again = _scanner(tmp_path)
    docs2 = {d.uri.removeprefix(url + "/"): (d.hash, d.error, d.label, d.size) for d in again.inspect(list_objects(url))}
    assert docs2 == {k: (d.hash, d.error, d.label, d.size) for k, d in docs.items()}
    assert s3.object_gets("photos") == before and again.fetched == 0

    # An object replaced in place has a new ETag: that one is fetched again, and its new hash used.
    s3_objects.put_object(Bucket="photos", Key="set/label0/photo_00000.jpg", Body=jpeg(999))
    third = {d.uri: d.hash for d in _scanner(tmp_path).inspect(list_objects(url))}
    assert third[f"{url}/label0/photo_00000.jpg"] == hashlib.sha256(jpeg(999)).hexdigest()
    grown = s3.object_gets("photos") - before
    assert grown == {"/photos/set/label0/photo_00000.jpg": 1}


def test_oversized_objects_are_reported_without_a_fetch(s3, tmp_path):
    s3_objects = client(s3)
    s3_objects.create_bucket(Bucket="big")
    s3_objects.put_object(Bucket="big", Key="a/large.jpg", Body=jpeg(1) + b"\0" * 5000)
    s3_objects.put_object(Bucket="big", Key="a/large.bin", Body=b"\0" * 5000)  # not named like one, no image
    s3_objects.put_object(Bucket="big", Key="a/small.jpg", Body=jpeg(2))
    docs = {d.uri: d for d in _scanner(tmp_path, max_bytes=4000).inspect(list_objects("s3://big"))}
    assert set(docs) == {"s3://big/a/large.jpg", "s3://big/a/small.jpg"}
    assert "file too large" in docs["s3://big/a/large.jpg"].error
    assert s3.object_gets("big")["/big/a/large.jpg"] == 0
    assert s3.object_gets("big")["/big/a/large.bin"] == 1  # its first bytes only
    _scanner(tmp_path, max_bytes=4000).inspect(list_objects("s3://big"))
    assert s3.object_gets("big")["/big/a/large.bin"] == 1  # remembered: not read again
    got = fetch(["s3://big/a/small.jpg", "s3://big/a/large.jpg", "s3://big/a/gone.jpg"], max_bytes=4000)
    assert got["s3://big/a/small.jpg"] == jpeg(2)
    assert "file too large" in got["s3://big/a/large.jpg"] and "cannot read object" in got["s3://big/a/gone.jpg"]


def test_a_missing_bucket_is_a_clear_error(s3):
    with pytest.raises(UserError, match="no bucket or prefix"):
        check_data("s3://no-such-bucket/prefix")
    with pytest.raises(ValueError, match="no-such-bucket"):
        list_objects("s3://no-such-bucket/prefix")


def test_result_thumbnails_read_objects_by_url(s3, tmp_path):
    s3_objects = client(s3)
    s3_objects.create_bucket(Bucket="thumbs")
    s3_objects.put_object(Bucket="thumbs", Key="a/one.jpg", Body=jpeg(3))
    (tmp_path / "one.jpg").write_bytes(jpeg(3))
    from_bucket = np.asarray(thumbnail("s3://thumbs/a/one.jpg"))
    assert np.array_equal(from_bucket, np.asarray(thumbnail(str(tmp_path / "one.jpg"))))
    assert not np.array_equal(from_bucket, np.asarray(thumbnail("s3://thumbs/a/gone.jpg")))  # the "unavailable" tile


def test_compare_accepts_a_bucket_and_keys_its_cache_on_the_listing(s3, tmp_path):
    from imgsearch.compare import CompareOptions

    fill_bucket(s3, "cmp", "set", n_good=6)
    opts = CompareOptions(data="s3://cmp/set", encoders=["efficientnet-lite0"], out=tmp_path)
    opts.check()  # a URL is not a folder, and that is fine: the loader lists it
    first = listing_digest("s3://cmp/set")
    assert listing_digest("s3://cmp/set") == first
    client(s3).put_object(Bucket="cmp", Key="set/label0/photo_00000.jpg", Body=jpeg(77))
    assert listing_digest("s3://cmp/set") != first  # an object replaced: the cached evaluation is stale
    assert data_name(opts.data) == "set"


def test_the_search_page_thumbnails_objects_by_url_and_checks_their_hash(s3):
    s3_objects = client(s3)
    s3_objects.create_bucket(Bucket="web")
    s3_objects.put_object(Bucket="web", Key="a/one.jpg", Body=jpeg(4))
    assert read_verified("s3://web/a/one.jpg", hashlib.sha256(jpeg(4)).hexdigest()) == jpeg(4)
    with pytest.raises(ThumbError, match="changed since it was indexed"):
        read_verified("s3://web/a/one.jpg", hashlib.sha256(b"other").hexdigest())
    with pytest.raises(ThumbError, match="cannot read"):
        read_verified("s3://web/a/gone.jpg", "0" * 64)


def test_the_cluster_loader_gets_optional_bucket_credentials_and_keeps_its_object_cache_on_the_data_volume():
    import yaml

    from imgsearch import deploy, k8s_security

    docs = list(yaml.safe_load_all(deploy.render()["k8s/20-loader.yml"]))
    (c,) = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": k8s_security.S3_SECRET, "key": name, "optional": True}  # a pod role works without it
    cache = env[KNOWN_OBJECTS_ENV]["value"]
    assert any(cache.startswith(m["mountPath"] + "/.") for m in c["volumeMounts"])  # persistent, hidden from scans
