"""`index` keeps the images it has seen on disk, not in dicts (imgsearch/seen_images.py)."""

from pathlib import Path

from imgsearch.seen_images import SeenImages


def test_seen_images_are_looked_up_by_page_and_their_file_goes_with_them():
    with SeenImages() as seen:
        folder = Path(seen._dir.name)
        assert seen.lookup(["a" * 64]) == {}
        seen.add({f"{i:064x}": (f"s3://b/{i}.jpg", {f"s3://b/{i}.jpg", "s3://b/old.jpg"} if i % 2 else set()) for i in range(1200)})
        got = seen.lookup([f"{i:064x}" for i in range(0, 1300, 3)])  # more than one chunk of parameters
        assert set(got) == {f"{i:064x}" for i in range(0, 1200, 3)}
        assert got[f"{3:064x}"] == ("s3://b/3.jpg", {"s3://b/3.jpg", "s3://b/old.jpg"}) and got[f"{6:064x}"] == ("s3://b/6.jpg", set())
        assert folder.exists()
    assert not folder.exists()


def test_the_paths_scanned_for_prune_read_back_as_a_mapping():
    with SeenImages() as seen:
        assert not seen.present()  # an empty scan: prune refuses
        seen.add_present({"s3://b/a.jpg": "1" * 64, "s3://b/b.jpg": "2" * 64})
        seen.add_present({"s3://b/c.jpg": "1" * 64})
        present = seen.present()
        assert len(present) == 3 and present.get("s3://b/b.jpg") == "2" * 64 and present.get("s3://b/gone.jpg") is None
        assert dict(present) == {"s3://b/a.jpg": "1" * 64, "s3://b/b.jpg": "2" * 64, "s3://b/c.jpg": "1" * 64}
