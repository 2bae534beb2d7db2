"""Fills Glance's catalog to the metadata workload's size by copying rows of images it created
through its API (its API creates about a dozen images a second on a busy 2-core machine, so
10 000 through the API would take the better part of the run)."""

import datetime
import os
import sqlite3
import uuid


def _columns(db, table):
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def clone_images(service, templates, first, count, name_format="bench-meta-{:05d}"):
    """Adds images `first`..`count - 1` to Glance's database, image n a copy of
    `templates[n % len(templates)]` (an image id; its row, properties and tags) with a new id and
    name. Returns the new ids."""
    db = sqlite3.connect(os.path.join(service.data_dir, "glance.sqlite"), timeout=60)
    image_cols = _columns(db, "images")
    prop_cols = [c for c in _columns(db, "image_properties") if c != "id"]
    tag_cols = [c for c in _columns(db, "image_tags") if c != "id"]
    rows = {}
    for t in templates:
        image = db.execute(f"SELECT {', '.join(image_cols)} FROM images WHERE id = ?", (t,)).fetchone()
        props = db.execute(f"SELECT {', '.join(prop_cols)} FROM image_properties WHERE image_id = ? AND deleted = 0",
                           (t,)).fetchall()
        tags = db.execute(f"SELECT {', '.join(tag_cols)} FROM image_tags WHERE image_id = ? AND deleted = 0",
                          (t,)).fetchall()
        if image is None:
            raise RuntimeError(f"Glance has no image {t}")
        rows[t] = (image, props, tags)
    ids = []
    start = datetime.datetime.utcnow()
    with db:
        for n in range(first, count):
            image, props, tags = rows[templates[n % len(templates)]]
            new_id = str(uuid.uuid4())
            when = (start + datetime.timedelta(microseconds=n)).strftime("%Y-%m-%d %H:%M:%S.%f")
            values = dict(zip(image_cols, image), id=new_id, name=name_format.format(n), created_at=when, updated_at=when)
            db.execute(f"INSERT INTO images ({', '.join(image_cols)}) VALUES ({', '.join('?' * len(image_cols))})",
                       [values[c] for c in image_cols])
            for table, cols, items in (("image_properties", prop_cols, props), ("image_tags", tag_cols, tags)):
                for item in items:
                    v = dict(zip(cols, item), image_id=new_id, created_at=when, updated_at=when)
                    db.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                               [v[c] for c in cols])
            ids.append(new_id)
    db.close()
    return ids
