"""Sends events through Segment's Python library (segment-analytics-python) to a running
Custodia, with the library's own batching, gzip and retries (driven by tests/api/sdks.rs).
Environment: HOST (http://127.0.0.1:PORT), WRITE_KEY (a Custodia API key), USER_ID, ANON_ID. Prints one
JSON line: {"errors": [...]}, the failures the library reported."""

import json
import os

from segment.analytics.client import Client

errors = []
client = Client(
    write_key=os.environ["WRITE_KEY"],
    host=os.environ["HOST"],
    gzip=True,
    max_retries=2,
    on_error=lambda error, _batch: errors.append(str(error)),
)
user_id = os.environ["USER_ID"]
anonymous_id = os.environ["ANON_ID"]
# The same messages as send.mjs: the anonymous visitor's banner answer and page view, who the
# user is (linked to the visitor), an order, a page view, and an event whose consent context
# denies its only purpose.
advertising = {"consent": {"categoryPreferences": {"Advertising": True}}}
client.track(
    anonymous_id=anonymous_id,
    event="Segment Consent Preference Updated",
    context={**advertising, "ip": "192.0.2.44", "userAgent": "SdkTest/1.0"},
)
client.page(anonymous_id=anonymous_id, name="Home", properties={"page_url": "/"}, context=advertising)
client.identify(
    user_id=user_id,
    anonymous_id=anonymous_id,
    traits={"email": f"{user_id}@example.com", "country": "DE", "plan": "gold"},
)
client.track(
    user_id=user_id,
    event="Order Completed",
    properties={"order_id": "ORD-SDK-1", "revenue": 12.5, "products": [{"sku": "A-1"}]},
)
client.page(user_id=user_id, name="Checkout", properties={"page_url": "/checkout"})
client.track(
    user_id=user_id,
    event="Product Viewed",
    context={"consent": {"categoryPreferences": {"Analytics": False}}},
)
client.flush()
client.shutdown()
print(json.dumps({"errors": errors}))
