"""Writes a Braze Currents export, as Currents lays one out in S3, for import-currents' tests.

    make-export.py good OUT     several event types and dates, duplicate deliveries, events
                                without an external id, a schema with fields added and one
                                without optional fields, three codecs
    make-export.py later OUT    a later delivery: one new purchase and one event delivered again
    make-export.py bad OUT      a file that is not Avro, a truncated file, a corrupt block, an
                                unsupported codec, and a huge properties string, beside one good
                                file
    make-export.py bench OUT N  N purchases in one deflate file, for the throughput bench

Every value is written out here, so the test can state the rows it expects.
"""

import io
import json
import os
import sys

import fastavro

NAMESPACE = "dataexport.S3.inner"
INTEGRATION = "dataexport.prod-01.S3.integration.5f0c"

OPTIONAL = lambda name, kind="string": {"name": name, "type": ["null", kind], "default": None}


def schema(event_type, fields):
    *namespace, name = event_type.split(".")
    return fastavro.parse_schema(
        {
            "type": "record",
            "name": name,
            "namespace": ".".join([NAMESPACE, *namespace]),
            "fields": fields,
        }
    )


DEVICE = [OPTIONAL("platform"), OPTIONAL("os_version"), OPTIONAL("device_model"), OPTIONAL("device_id")]
IDS = [
    {"name": "id", "type": "string"},
    {"name": "user_id", "type": "string"},
    OPTIONAL("external_user_id"),
]

PURCHASE = "users.behaviors.Purchase"
PURCHASE_FIELDS = IDS + [
    OPTIONAL("app_id"),
    {"name": "time", "type": "int"},
    *DEVICE,
    {"name": "product_id", "type": "string"},
    {"name": "price", "type": "float"},
    {"name": "currency", "type": "string"},
    {"name": "properties", "type": "string"},
    OPTIONAL("app_group_id"),
]
# A later schema version: Braze adds fields; readers ignore what they do not know.
PURCHASE_FIELDS_V2 = PURCHASE_FIELDS + [OPTIONAL("ad_id"), OPTIONAL("ad_tracking_enabled", "boolean")]

CUSTOM = "users.behaviors.CustomEvent"
CUSTOM_FIELDS = IDS + [
    OPTIONAL("app_id"),
    {"name": "time", "type": "int"},
    OPTIONAL("timezone"),
    *DEVICE,
    {"name": "name", "type": "string"},
    {"name": "properties", "type": "string"},
]
# An older, leaner version: none of the optional fields.
CUSTOM_FIELDS_LEAN = IDS + [
    {"name": "time", "type": "int"},
    {"name": "name", "type": "string"},
    {"name": "properties", "type": "string"},
]

CLICK = "users.messages.contentcard.Click"
CLICK_FIELDS = IDS + [
    {"name": "content_card_id", "type": "string"},
    {"name": "time", "type": "int"},
    {"name": "app_id", "type": "string"},
    OPTIONAL("campaign_id"),
    OPTIONAL("campaign_name"),
    OPTIONAL("message_variation_id"),
]

OPEN = "users.messages.email.Open"
OPEN_FIELDS = IDS + [{"name": "time", "type": "int"}, OPTIONAL("email_address")]

DAY = 1764547200  # 2025-12-01T00:00:00Z


def purchase(event_id, user, product, price, at, **extra):
    record = {
        "id": event_id,
        "user_id": "braze-" + (user or "anonymous"),
        "external_user_id": user,
        "app_id": "app-1",
        "time": at,
        "platform": "ios",
        "product_id": product,
        "price": price,
        "currency": "USD",
        "properties": json.dumps({"size": "M"}),
    }
    record.update(extra)
    return record


def custom(event_id, user, name, properties, at):
    return {
        "id": event_id,
        "user_id": "braze-" + (user or "anonymous"),
        "external_user_id": user,
        "time": at,
        "name": name,
        "properties": properties if isinstance(properties, str) else json.dumps(properties),
    }


def click(event_id, user, card, at):
    return {
        "id": event_id,
        "user_id": "braze-" + user,
        "external_user_id": user,
        "content_card_id": card,
        "time": at,
        "app_id": "app-1",
        "campaign_name": "Winter picks",
    }


def path(out, event_type, hour, part):
    folder = os.path.join(out, INTEGRATION, f"event_type={event_type}", f"date={hour}", "0", "0")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{INTEGRATION}+{part}+0.avro")


def write(out, event_type, hour, part, fields, records, codec="null"):
    target = path(out, event_type, hour, part)
    with open(target, "wb") as f:
        fastavro.writer(f, schema(event_type, fields), records, codec=codec)
    return target


def good(out):
    write(
        out, PURCHASE, "2025-12-01-10", 0, PURCHASE_FIELDS,
        [
            purchase("p-1", "u1", "sku-1", 19.99, DAY + 36000),
            purchase("p-2", "u2", "sku-2", 5.0, DAY + 36060),
            purchase("p-3", None, "sku-1", 19.99, DAY + 36120),
            purchase("p-4", "u1", "sku-3", 120.5, DAY + 36180),
        ],
        codec="deflate",
    )
    write(
        out, PURCHASE, "2025-12-02-08", 1, PURCHASE_FIELDS_V2,
        [
            # p-2 again: delivered twice.
            purchase("p-2", "u2", "sku-2", 5.0, DAY + 36060, ad_id=None),
            purchase("p-5", "u3", "sku-1", 19.99, DAY + 86400 + 28800, ad_id="ad", ad_tracking_enabled=True),
        ],
        codec="snappy",
    )
    write(
        out, CUSTOM, "2025-12-01-11", 0, CUSTOM_FIELDS,
        [
            custom("c-1", "u1", "Viewed Product", {"product_id": "sku-2", "source": "home"}, DAY + 39600),
            custom("c-2", "u2", "Logged In", {}, DAY + 39660),
            custom("c-3", "u2", "Viewed Product", {"category": "shoes"}, DAY + 39720),
            custom("c-4", "u2", "Viewed Product", {"product_id": 7}, DAY + 39780),
            custom("c-5", None, "Viewed Product", {"product_id": "sku-1"}, DAY + 39840),
        ],
    )
    write(
        out, CUSTOM, "2025-12-02-09", 0, CUSTOM_FIELDS_LEAN,
        [custom("c-6", "u3", "Added to Wishlist", {"sku": "sku-4"}, DAY + 86400 + 32400)],
        codec="deflate",
    )
    write(
        out, CLICK, "2025-12-02-12", 0, CLICK_FIELDS,
        [click("k-1", "u3", "card-9", DAY + 86400 + 43200)],
    )
    write(
        out, OPEN, "2025-12-02-12", 0, OPEN_FIELDS,
        [{"id": "o-1", "user_id": "braze-u1", "external_user_id": "u1", "time": DAY + 86400 + 43300}],
    )


def later(out):
    write(
        out, PURCHASE, "2025-12-03-07", 0, PURCHASE_FIELDS,
        [
            purchase("p-6", "u2", "sku-4", 42.0, DAY + 2 * 86400 + 25200),
            # Delivered again, a day later.
            purchase("p-1", "u1", "sku-1", 19.99, DAY + 36000),
        ],
    )


def encoded(event_type, fields, records, codec="null"):
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema(event_type, fields), records, codec=codec, sync_interval=200)
    return buffer.getvalue()


def bad(out):
    hour = "2025-12-04-10"
    write(out, PURCHASE, hour, 0, PURCHASE_FIELDS, [purchase("b-1", "u1", "sku-1", 1.0, DAY + 3 * 86400)])

    with open(path(out, PURCHASE, hour, 1), "wb") as f:
        f.write(b"USER_ID,ITEM_ID\nu1,sku-1\n")

    many = [purchase(f"t-{i}", "u9", f"sku-{i}", 1.0, DAY + 3 * 86400 + i) for i in range(40)]
    whole = encoded(PURCHASE, PURCHASE_FIELDS, many)
    with open(path(out, PURCHASE, hour, 2), "wb") as f:
        f.write(whole[: len(whole) // 2])

    others = [purchase(f"r-{i}", "u8", f"sku-{i}", 2.0, DAY + 3 * 86400 + i) for i in range(40)]
    corrupt = bytearray(encoded(PURCHASE, PURCHASE_FIELDS, others, codec="deflate"))
    middle = len(corrupt) // 2
    corrupt[middle : middle + 32] = b"\xff" * 32
    with open(path(out, PURCHASE, hour, 3), "wb") as f:
        f.write(bytes(corrupt))

    write(out, PURCHASE, hour, 4, PURCHASE_FIELDS, many[:3], codec="bzip2")

    huge = "x" * (5 * 1024 * 1024)
    write(
        out, CUSTOM, hour, 0, CUSTOM_FIELDS,
        [
            custom("h-1", "u1", "Viewed Product", {"product_id": "sku-1", "blob": huge}, DAY + 3 * 86400 + 60),
            custom("h-2", "u1", "Viewed Product", {"product_id": "sku-2"}, DAY + 3 * 86400 + 120),
        ],
    )


def bench(out, count):
    def records():
        for i in range(count):
            yield purchase(
                f"{i:08x}-58cc-4372-a567-0e02b2c3d479", f"user-{i % 50000}", f"sku-{i % 20000}",
                float(i % 200) + 0.99, DAY + i,
            )

    write(out, PURCHASE, "2025-12-05-00", 0, PURCHASE_FIELDS, records(), codec="deflate")


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    if kind == "bench":
        bench(out, int(sys.argv[3]))
    else:
        {"good": good, "later": later, "bad": bad}[kind](out)
