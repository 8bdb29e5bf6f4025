"""Which Redis Cluster slot a contact's keys live in: the hash tag of its partition bucket.

Every Redis key of a contact carries ``{<tag>}`` where ``tag = SLOT_TAGS[bucket_of(contact)]``
(shared/topics.py: CRC-32 of the id modulo 256, the bucket that also picks the contact's
Kafka partition). So a contact's cap sets and inbox version share one slot, and so does
every contact of a batch: the scheduler never mixes buckets in a batch, so a batch's cap
check and version bump stay one script call on a cluster too.

Bucket ``b``'s tag hashes to slot ``b * 64`` (CRC16 of the tag modulo 16,384): the 256
buckets are evenly spaced over the slots, so the contiguous, equal slot ranges that
``redis-cli --cluster create`` gives N masters hold 256 / N buckets each (86/85/85 for
three), and resharding moves whole buckets. The tags are found by trying ``b<bucket>.<n>``
for n = 0, 1, ... (``python -m shared.redis_slots`` prints the table again;
tests/unit/test_redis_slots.py recomputes every slot).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from shared.topics import BUCKETS, bucket_of

SLOTS = 16_384
SLOTS_PER_BUCKET = SLOTS // BUCKETS

# fmt: off
SLOT_TAGS: tuple[str, ...] = (
    "b0.52", "b1.4903", "b2.26937", "b3.22305", "b4.9705", "b5.12974", "b6.43312", "b7.214",
    "b8.7794", "b9.8531", "b10.2798", "b11.68281", "b12.3941", "b13.3273", "b14.125749",
    "b15.13172", "b16.18909", "b17.2732", "b18.68426", "b19.5597", "b20.7917", "b21.2557",
    "b22.18282", "b23.13127", "b24.283", "b25.8519", "b26.7861", "b27.2421", "b28.15820",
    "b29.4780", "b30.2931", "b31.2203", "b32.12347", "b33.5687", "b34.9658", "b35.22572",
    "b36.2664", "b37.18968", "b38.41760", "b39.68447", "b40.11673", "b41.29515", "b42.5628",
    "b43.30889", "b44.2224", "b45.2916", "b46.18224", "b47.13181", "b48.60908", "b49.22017",
    "b50.1239", "b51.20311", "b52.28288", "b53.47282", "b54.13718", "b55.45934", "b56.5539",
    "b57.19489", "b58.8979", "b59.50780", "b60.48564", "b61.49824", "b62.5881", "b63.16695",
    "b64.3299", "b65.11541", "b66.45855", "b67.3676", "b68.41790", "b69.109465", "b70.9583",
    "b71.3054", "b72.779", "b73.49707", "b74.45866", "b75.16138", "b76.11936", "b77.2026",
    "b78.11085", "b79.5283", "b80.16268", "b81.61", "b82.11622", "b83.6985", "b84.18275",
    "b85.20113", "b86.1966", "b87.1254", "b88.13517", "b89.12857", "b90.11611", "b91.29577",
    "b92.2395", "b93.8642", "b94.48560", "b95.22218", "b96.3219", "b97.49733", "b98.59381",
    "b99.14309", "b100.49030", "b101.23748", "b102.19716", "b103.21470", "b104.5296",
    "b105.41817", "b106.10271", "b107.5679", "b108.6998", "b109.10786", "b110.19725",
    "b111.12480", "b112.41600", "b113.2012", "b114.49353", "b115.1268", "b116.18571",
    "b117.19831", "b118.2254", "b119.2966", "b120.40531", "b121.8239", "b122.2833",
    "b123.2301", "b124.19640", "b125.17297", "b126.420", "b127.53282", "b128.23471",
    "b129.22931", "b130.5258", "b131.19411", "b132.11588", "b133.48233", "b134.2989",
    "b135.40760", "b136.1558", "b137.4918", "b138.24008", "b139.9558", "b140.717", "b141.835",
    "b142.10384", "b143.27975", "b144.23017", "b145.61908", "b146.45080", "b147.19049",
    "b148.44837", "b149.692", "b150.101812", "b151.42103", "b152.9139", "b153.11529",
    "b154.51780", "b155.103404", "b156.14691", "b157.29285", "b158.25", "b159.10510",
    "b160.42061", "b161.2707", "b162.12747", "b163.123319", "b164.39392", "b165.23076",
    "b166.5839", "b167.40793", "b168.1990", "b169.11932", "b170.61", "b171.670", "b172.11548",
    "b173.10808", "b174.69487", "b175.54093", "b176.312", "b177.12860", "b178.19276",
    "b179.21110", "b180.45382", "b181.5457", "b182.23315", "b183.27927", "b184.46800",
    "b185.42232", "b186.13854", "b187.5521", "b188.9357", "b189.3680", "b190.114", "b191.5303",
    "b192.18128", "b193.41693", "b194.9311", "b195.9823", "b196.13647", "b197.142533",
    "b198.5188", "b199.21277", "b200.28517", "b201.10671", "b202.916", "b203.634",
    "b204.23278", "b205.9908", "b206.3302", "b207.3830", "b208.6941", "b209.3501", "b210.427",
    "b211.5082", "b212.4569", "b213.1929", "b214.2061", "b215.17068", "b216.45902",
    "b217.1782", "b218.3967", "b219.3255", "b220.48826", "b221.4295", "b222.1108",
    "b223.19240", "b224.12678", "b225.5319", "b226.10540", "b227.11800", "b228.3457",
    "b229.6817", "b230.16983", "b231.21372", "b232.9492", "b233.3145", "b234.10573",
    "b235.11833", "b236.41351", "b237.45963", "b238.3303", "b239.3831", "b240.15769",
    "b241.141", "b242.12323", "b243.2132", "b244.11991", "b245.23412", "b246.55984",
    "b247.24058", "b248.1078", "b249.28370", "b250.2289", "b251.16922", "b252.43532",
    "b253.3762", "b254.5958", "b255.21719",
)
# fmt: on


def tag_of(contact_id: str) -> str:
    """The hash tag (without braces) of the contact's keys."""
    return SLOT_TAGS[bucket_of(contact_id)]


def by_tag(contact_ids: Iterable[str]) -> dict[str, list[str]]:
    """The contacts grouped by their keys' tag (one Redis Cluster slot each), in order."""
    groups: dict[str, list[str]] = {}
    tags, crc32 = SLOT_TAGS, zlib.crc32  # tag_of inlined: this runs per recipient
    for contact_id in contact_ids:
        tag = tags[crc32(contact_id.encode()) % BUCKETS]
        members = groups.get(tag)
        if members is None:
            groups[tag] = [contact_id]
        else:
            members.append(contact_id)
    return groups


def _find_tag(bucket: int) -> str:
    from redis.crc import key_slot  # only to print the table again

    n = 0
    while key_slot(f"b{bucket}.{n}".encode()) != bucket * SLOTS_PER_BUCKET:
        n += 1
    return f"b{bucket}.{n}"


if __name__ == "__main__":
    for bucket in range(BUCKETS):
        print(f'    "{_find_tag(bucket)}",')
