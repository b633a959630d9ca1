// Sends events through a real tracking SDK to a running Custodia, with the SDK's own batching,
// compression and retries (driven by tests/api/sdks.rs). Environment: SDK (segment or
// rudderstack), HOST (http://127.0.0.1:PORT), WRITE_KEY (a Custodia API key), USER_ID, ANON_ID
// (the anonymous id the user browsed with before logging in).
// Prints one JSON line: {"errors": [...]}, the failures the SDK reported.
import { Analytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';

const { SDK, HOST, WRITE_KEY, USER_ID, ANON_ID } = process.env;
const errors = [];

// Before logging in: the visitor answers the cookie banner (a consent event) and views a page
// with the banner's answer in its context.
const advertising = { consent: { categoryPreferences: { Advertising: true } } };
const consented = {
  anonymousId: ANON_ID,
  event: 'Segment Consent Preference Updated',
  context: { ...advertising, ip: '192.0.2.44', userAgent: 'SdkTest/1.0' },
};
const visit = { anonymousId: ANON_ID, name: 'Home', properties: { page_url: '/' }, context: advertising };
// Who the user is, linked to the anonymous visitor: an e-mail address (an identifier), a
// declared trait, an undeclared one.
const identify = {
  userId: USER_ID,
  anonymousId: ANON_ID,
  traits: { email: `${USER_ID}@example.com`, country: 'DE', plan: 'gold' },
};
// Three events: an order (a declared field, an undeclared one, a nested one), a page view, and
// an event whose consent context denies its only purpose.
const order = {
  userId: USER_ID,
  event: 'Order Completed',
  properties: { order_id: 'ORD-SDK-1', revenue: 12.5, products: [{ sku: 'A-1' }] },
};
const page = { userId: USER_ID, name: 'Checkout', properties: { page_url: '/checkout' } };
const denied = {
  userId: USER_ID,
  event: 'Product Viewed',
  context: { consent: { categoryPreferences: { Analytics: false } } },
};

if (SDK === 'segment') {
  // A generous request timeout: the suite runs this beside the other tests on a debug build.
  const analytics = new Analytics({
    writeKey: WRITE_KEY, host: HOST, flushAt: 10, maxRetries: 2, httpRequestTimeout: 30000,
  });
  analytics.on('error', (error) => errors.push(String(error?.code ?? error?.message ?? error)));
  analytics.track(consented);
  analytics.page(visit);
  analytics.identify(identify);
  analytics.track(order);
  analytics.page(page);
  analytics.track(denied);
  await analytics.closeAndFlush({ timeout: 20000 });
} else if (SDK === 'rudderstack') {
  const client = new RudderAnalytics(WRITE_KEY, {
    dataPlaneUrl: HOST,
    flushAt: 10,
    retryCount: 2,
    logLevel: 'error',
    errorHandler: (error) => errors.push(String(error?.message ?? error)),
  });
  client.track(consented);
  client.page(visit);
  client.identify(identify);
  client.track(order);
  client.page(page);
  client.track(denied);
  await client.flush();
} else {
  errors.push(`unknown SDK ${SDK}`);
}
console.log(JSON.stringify({ errors }));
