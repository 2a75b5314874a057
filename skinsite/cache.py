"""Django's Redis cache, made to treat an unreachable Redis as an empty cache instead of a 500.

The cache holds nothing but the API/upload rate counters. When Redis is down (or hung: the
socket timeouts in settings bound the wait), an upload must still be saved and shown as queued,
and its analysis sent by the outbox once Redis is back (diagnosis/recovery.py). So reads miss and
writes are dropped, with a warning; the rate limits do not count during the outage (fail open).
After a failure the cache skips Redis for BROKER_BREAKER_SECONDS (skinsite/breaker.py), so a hung
Redis costs one socket timeout, not one per cache call of every request.
"""

import logging

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .breaker import CircuitBreaker

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
breaker = CircuitBreaker("cache", getattr(settings, "BROKER_BREAKER_SECONDS", 15.0))


def _guarded(operation, call, default):
    if breaker.is_open():
        return default
    try:
        return call()
    except UNREACHABLE as exc:
        breaker.trip()
        logger.warning("cache unavailable (%s: %s); %s skipped, and Redis for %.0f s", exc.__class__.__name__, exc,
                       operation, breaker.seconds)
        return default


class FailOpenRedisCache(RedisCache):
    def get(self, key, default=None, version=None):
        return _guarded("get", lambda: super(FailOpenRedisCache, self).get(key, default, version), default)

    def get_many(self, keys, version=None):
        return _guarded("get_many", lambda: super(FailOpenRedisCache, self).get_many(keys, version), {})

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        _guarded("set", lambda: super(FailOpenRedisCache, self).set(key, value, timeout, version), None)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return _guarded("add", lambda: super(FailOpenRedisCache, self).add(key, value, timeout, version), False)

    def delete(self, key, version=None):
        return _guarded("delete", lambda: super(FailOpenRedisCache, self).delete(key, version), False)
