// Test driver around the reference Java client (kafka-clients 4.3.0), run by
// tests/python/test_java.py. Prints machine-readable lines; exits non-zero on any failure.
//
//   produce BOOTSTRAP TOPIC N ACKS COMPRESSION [IDEMPOTENCE=true|false]
//       N records; record i has key "key-<i%13>" (null when i%10==9) and value value(i).
//       Prints "ACK <index> <partition> <offset>" per record, then "PRODUCED <n>".
//   consume BOOTSTRAP TOPIC N TIMEOUT_MS
//       Reads N records from the beginning of every partition (assign, no group). Prints
//       "REC <partition> <offset> <key|-> <crc32 of value> <value length> <timestamp>", then
//       "CONSUMED <n>".
//   create BOOTSTRAP TOPIC PARTITIONS | list BOOTSTRAP | describe BOOTSTRAP TOPIC
//   delete BOOTSTRAP TOPIC
//       Admin; print "CREATED t", "TOPIC t" per topic, "PARTITION p leader <id> replicas
//       <ids>" per partition, "DELETED t".
//   configresources BOOTSTRAP [TYPE...]
//       Admin.listConfigResources (ListConfigResources, API 74) for the given
//       ConfigResource.Type names (none: every type); prints "RESOURCE <type> <name>", sorted.
//   brokerconfig BOOTSTRAP BROKER [NAME=VALUE | NAME=]...
//       Admin.incrementalAlterConfigs on BROKER resource BROKER ("" = the cluster-wide
//       default entity): SET each NAME=VALUE, DELETE each NAME=. Prints "ALTERED" or
//       "ERROR <exception class> <message>", then DescribeConfigs of BROKER (with synonyms):
//       "CONFIG <name> <value> <source> <read-only>" per entry.
//   groupconfig BOOTSTRAP GROUP [NAME=VALUE | NAME=]...
//       The same on the GROUP resource GROUP (per-group config overrides, KIP-848).
//   selftest KEY...
//       Local checks, no broker: every codec compresses and decompresses a batch; prints
//       "MURMUR2 <key> <Utils.murmur2(key)>" so the Python murmur2 helper is cross-checked.
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.zip.CRC32;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.ListConfigResourcesOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.record.internal.CompressionType;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.MemoryRecordsBuilder;
import org.apache.kafka.common.record.internal.Record;
import org.apache.kafka.common.record.internal.RecordBatch;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.Utils;

public final class ShardlogClient {
    static final long ADMIN_TIMEOUT_S = 30;
    static final long PRODUCE_TIMEOUT_S = 120;

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            usage();
        }
        switch (args[0]) {
            case "produce" -> produce(args[1], args[2], Integer.parseInt(args[3]), args[4],
                    args[5], args.length > 6 ? args[6] : "true");
            case "consume" -> consume(args[1], args[2], Integer.parseInt(args[3]),
                    Long.parseLong(args[4]));
            case "groupconsume" -> groupConsume(args[1], args[2], args[3],
                    Integer.parseInt(args[4]), Long.parseLong(args[5]), "classic");
            case "cgroupconsume" -> groupConsume(args[1], args[2], args[3],
                    Integer.parseInt(args[4]), Long.parseLong(args[5]), "consumer");
            case "txnproduce" -> txnProduce(args[1], args[2], args[3],
                    List.of(args).subList(4, args.length));
            case "reassign" -> reassign(args[1], args[2], Integer.parseInt(args[3]), args[4]);
            case "reassignments" -> reassignments(args[1]);
            case "create" -> create(args[1], args[2], Integer.parseInt(args[3]));
            case "list" -> list(args[1]);
            case "describe" -> describe(args[1], args[2]);
            case "describeisr" -> describeIsr(args[1], args[2]);
            case "delete" -> delete(args[1], args[2]);
            case "configresources" -> configResources(args[1],
                    List.of(args).subList(2, args.length));
            case "brokerconfig" -> alterAndDescribe(args[1],
                    new ConfigResource(ConfigResource.Type.BROKER, args[2]),
                    List.of(args).subList(3, args.length));
            case "groupconfig" -> alterAndDescribe(args[1],
                    new ConfigResource(ConfigResource.Type.GROUP, args[2]),
                    List.of(args).subList(3, args.length));
            case "selftest" -> selftest(args);
            default -> usage();
        }
        System.out.flush();
    }

    static void usage() {
        System.err.println("usage: ShardlogClient produce|consume|groupconsume|cgroupconsume|"
                + "txnproduce|create|list|describe|delete|selftest ...");
        System.exit(2);
    }

    /**
     * Client security settings (test_tls.py): the properties in the file named by the
     * SHARDLOG_CLIENT_CONFIG environment variable (e.g. security.protocol=SSL and the trust
     * store), added to every client this program makes; none when it is unset.
     */
    static Properties secured(Properties props) {
        String path = System.getenv("SHARDLOG_CLIENT_CONFIG");
        if (path == null || path.isEmpty()) {
            return props;
        }
        try (java.io.FileInputStream in = new java.io.FileInputStream(path)) {
            Properties extra = new Properties();
            extra.load(in);
            props.putAll(extra);
        } catch (java.io.IOException e) {
            throw new RuntimeException("cannot read SHARDLOG_CLIENT_CONFIG " + path, e);
        }
        return props;
    }

    /** Deterministic value of record i; test_java.py computes the same bytes. */
    static byte[] value(int i) {
        StringBuilder sb = new StringBuilder("java-" + i + "-");
        for (int j = 0; j < i % 300; j++) {
            sb.append((char) ('a' + (i * 7 + j) % 26));
        }
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    static byte[] key(int i) {
        return i % 10 == 9 ? null : ("key-" + (i % 13)).getBytes(StandardCharsets.UTF_8);
    }

    static void produce(String bootstrap, String topic, int n, String acks, String compression,
            String idempotence) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, acks);
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, idempotence);
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        AtomicReference<Exception> failure = new AtomicReference<>();
        long[][] acked = new long[n][];
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(secured(props))) {
            for (int i = 0; i < n; i++) {
                final int index = i;
                producer.send(new ProducerRecord<>(topic, key(i), value(i)),
                        (RecordMetadata md, Exception e) -> {
                            if (e != null) {
                                failure.compareAndSet(null, e);
                            } else {
                                acked[index] = new long[] {md.partition(), md.offset()};
                            }
                        });
            }
            producer.flush();
        }
        if (failure.get() != null) {
            System.out.println("ERROR " + failure.get());
            System.exit(1);
        }
        for (int i = 0; i < n; i++) {
            System.out.println("ACK " + i + " " + acked[i][0] + " " + acked[i][1]);
        }
        System.out.println("PRODUCED " + n);
    }

    /** A byte-array consumer's settings: no auto commit, from the earliest offset. */
    static Properties consumerProps(String bootstrap) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        return secured(props);
    }

    static void consume(String bootstrap, String topic, int n, long timeoutMs) {
        Properties props = consumerProps(bootstrap);
        int count = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                tps.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (count < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    CRC32 crc = new CRC32();
                    crc.update(r.value());
                    String k = r.key() == null ? "-" : new String(r.key(), StandardCharsets.UTF_8);
                    System.out.println("REC " + r.partition() + " " + r.offset() + " " + k + " "
                            + crc.getValue() + " " + r.value().length + " " + r.timestamp());
                    count++;
                }
            }
        }
        System.out.println("CONSUMED " + count);
        if (count < n) {
            System.exit(1);
        }
    }

    /**
     * Joins consumer group `group` subscribed to `topic`, takes the next `n` records from the
     * group's committed positions (printing "GREC partition offset value"), commits exactly
     * the positions after them (commitSync) and prints "COMMITTED count". `protocol` is the
     * `group.protocol`: "classic", or "consumer" (KIP-848), whose rebalance callbacks print
     * "ASSIGN p..." and "REVOKE p..." (the partitions added or taken away).
     */
    static void groupConsume(String bootstrap, String topic, String group, int n,
            long timeoutMs, String protocol) {
        Properties props = consumerProps(bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        int count = 0;
        Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    System.out.println("ASSIGN" + partitionList(partitions));
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    System.out.println("REVOKE" + partitionList(partitions));
                }
            });
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (count < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    if (count == n) {
                        break;
                    }
                    System.out.println("GREC " + r.partition() + " " + r.offset() + " "
                            + new String(r.value(), StandardCharsets.UTF_8));
                    next.put(new TopicPartition(r.topic(), r.partition()),
                            new OffsetAndMetadata(r.offset() + 1));
                    count++;
                }
            }
            consumer.commitSync(next, Duration.ofSeconds(60));
        }
        System.out.println("COMMITTED " + count);
        if (count < n) {
            System.exit(1);
        }
    }

    static String partitionList(Collection<TopicPartition> partitions) {
        StringBuilder sb = new StringBuilder();
        partitions.stream().map(TopicPartition::partition).sorted()
                .forEach(p -> sb.append(' ').append(p));
        return sb.toString();
    }

    /**
     * One transactional producer with id `transactionalId`: for each `prefix:count:commit` or
     * `prefix:count:abort` step, a transaction of `count` records valued "prefix-i" (keys spread
     * them over the partitions), committed or aborted; prints "TXN prefix COMMITTED|ABORTED".
     */
    static void txnProduce(String bootstrap, String topic, String transactionalId,
            List<String> steps) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(secured(props))) {
            producer.initTransactions();
            for (String step : steps) {
                String[] parts = step.split(":");
                String prefix = parts[0];
                int count = Integer.parseInt(parts[1]);
                boolean commit = parts[2].equals("commit");
                producer.beginTransaction();
                for (int i = 0; i < count; i++) {
                    byte[] k = ("k" + i).getBytes(StandardCharsets.UTF_8);
                    byte[] v = (prefix + "-" + i).getBytes(StandardCharsets.UTF_8);
                    producer.send(new ProducerRecord<>(topic, k, v));
                }
                if (commit) {
                    producer.commitTransaction();
                    System.out.println("TXN " + prefix + " COMMITTED");
                } else {
                    producer.flush();
                    producer.abortTransaction();
                    System.out.println("TXN " + prefix + " ABORTED");
                }
            }
        }
    }

    /**
     * AlterPartitionReassignments of one partition to `replicas` (comma-separated broker ids,
     * or "cancel"); prints "REASSIGN OK".
     */
    static void reassign(String bootstrap, String topic, int partition, String replicas)
            throws Exception {
        java.util.Optional<org.apache.kafka.clients.admin.NewPartitionReassignment> target =
                replicas.equals("cancel")
                        ? java.util.Optional.empty()
                        : java.util.Optional.of(new org.apache.kafka.clients.admin
                                .NewPartitionReassignment(java.util.Arrays.stream(
                                        replicas.split(",")).map(Integer::valueOf).toList()));
        try (Admin admin = admin(bootstrap)) {
            admin.alterPartitionReassignments(Map.of(new TopicPartition(topic, partition), target))
                    .all().get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS);
        }
        System.out.println("REASSIGN OK");
    }

    /** ListPartitionReassignments: "MOVING topic partition replicas adding removing" each. */
    static void reassignments(String bootstrap) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            var moving = admin.listPartitionReassignments().reassignments()
                    .get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS);
            for (var entry : moving.entrySet()) {
                var r = entry.getValue();
                System.out.println("MOVING " + entry.getKey().topic() + " "
                        + entry.getKey().partition() + " " + join(r.replicas()) + " "
                        + join(r.addingReplicas()) + " " + join(r.removingReplicas()));
            }
        }
        System.out.println("LISTED");
    }

    static String join(List<Integer> ids) {
        return ids.isEmpty() ? "-" : ids.stream().map(String::valueOf)
                .collect(java.util.stream.Collectors.joining(","));
    }

    static Admin admin(String bootstrap) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return Admin.create(secured(props));
    }

    static void create(String bootstrap, String topic, int partitions) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                    .all().get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS);
        }
        System.out.println("CREATED " + topic);
    }

    static void list(String bootstrap) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            List<String> names = new ArrayList<>(
                    admin.listTopics().names().get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS));
            Collections.sort(names);
            for (String name : names) {
                System.out.println("TOPIC " + name);
            }
        }
    }

    static void describe(String bootstrap, String topic) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            Map<String, TopicDescription> all = admin.describeTopics(List.of(topic))
                    .allTopicNames().get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS);
            TopicDescription d = all.get(topic);
            System.out.println("TOPIC " + d.name() + " internal " + d.isInternal());
            for (TopicPartitionInfo p : d.partitions()) {
                StringBuilder replicas = new StringBuilder();
                p.replicas().forEach(node -> replicas.append(replicas.length() == 0 ? "" : ",")
                        .append(node.id()));
                System.out.println("PARTITION " + p.partition() + " leader " + p.leader().id()
                        + " replicas " + replicas);
            }
        }
    }

    /** Each partition's leader (-1: none), ISR, ELR and last-known ELR (KIP-966). */
    static void describeIsr(String bootstrap, String topic) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            TopicDescription d = admin.describeTopics(List.of(topic))
                    .allTopicNames().get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS).get(topic);
            for (TopicPartitionInfo p : d.partitions()) {
                System.out.println("PARTITION " + p.partition()
                        + " leader " + (p.leader() == null ? -1 : p.leader().id())
                        + " isr " + nodeIds(p.isr()) + " elr " + nodeIds(p.elr())
                        + " lastknownelr " + nodeIds(p.lastKnownElr()));
            }
        }
    }

    /** Node ids joined by commas, "-" for none. */
    static String nodeIds(List<Node> nodes) {
        if (nodes == null || nodes.isEmpty()) {
            return "-";
        }
        StringBuilder ids = new StringBuilder();
        nodes.forEach(node -> ids.append(ids.length() == 0 ? "" : ",").append(node.id()));
        return ids.toString();
    }

    static void configResources(String bootstrap, List<String> typeNames) throws Exception {
        Set<ConfigResource.Type> types = new HashSet<>();
        typeNames.forEach(name -> types.add(ConfigResource.Type.valueOf(name)));
        List<String> lines = new ArrayList<>();
        try (Admin admin = admin(bootstrap)) {
            for (ConfigResource r : admin.listConfigResources(types,
                    new ListConfigResourcesOptions()).all().get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS)) {
                lines.add("RESOURCE " + r.type() + " " + r.name());
            }
        }
        Collections.sort(lines);
        lines.forEach(System.out::println);
    }

    static void alterAndDescribe(String bootstrap, ConfigResource resource, List<String> edits)
            throws Exception {
        List<AlterConfigOp> ops = new ArrayList<>();
        for (String edit : edits) {
            String[] parts = edit.split("=", 2);
            ops.add(parts[1].isEmpty()
                    ? new AlterConfigOp(new ConfigEntry(parts[0], ""), AlterConfigOp.OpType.DELETE)
                    : new AlterConfigOp(new ConfigEntry(parts[0], parts[1]),
                            AlterConfigOp.OpType.SET));
        }
        try (Admin admin = admin(bootstrap)) {
            try {
                admin.incrementalAlterConfigs(Map.of(resource, ops)).all()
                        .get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS);
                System.out.println("ALTERED");
            } catch (ExecutionException e) {
                System.out.println("ERROR " + e.getCause().getClass().getSimpleName() + " "
                        + e.getCause().getMessage());
            }
            Config config = admin.describeConfigs(List.of(resource),
                    new DescribeConfigsOptions().includeSynonyms(true))
                    .all().get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS).get(resource);
            for (ConfigEntry entry : config.entries()) {
                System.out.println("CONFIG " + entry.name() + " " + entry.value() + " "
                        + entry.source() + " " + entry.isReadOnly());
            }
        }
    }

    static void delete(String bootstrap, String topic) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            admin.deleteTopics(List.of(topic)).all().get(ADMIN_TIMEOUT_S, TimeUnit.SECONDS);
        }
        System.out.println("DELETED " + topic);
    }

    static void selftest(String[] args) {
        for (CompressionType type : CompressionType.values()) {
            ByteBuffer buffer = ByteBuffer.allocate(1 << 20);
            MemoryRecordsBuilder builder = MemoryRecords.builder(buffer, RecordBatch.MAGIC_VALUE_V2,
                    Compression.of(type).build(), TimestampType.CREATE_TIME, 0L);
            for (int i = 0; i < 100; i++) {
                builder.append(1000L + i, key(i), value(i));
            }
            MemoryRecords records = builder.build();
            int i = 0;
            for (RecordBatch batch : records.batches()) {
                batch.ensureValid();
                if (batch.compressionType() != type) {
                    throw new IllegalStateException("codec " + batch.compressionType());
                }
                for (Record r : batch) {
                    byte[] v = new byte[r.valueSize()];
                    r.value().get(v);
                    if (!java.util.Arrays.equals(v, value(i))) {
                        throw new IllegalStateException(type + ": record " + i + " differs");
                    }
                    i++;
                }
            }
            if (i != 100) {
                throw new IllegalStateException(type + ": " + i + " records");
            }
            System.out.println("CODEC " + type.name + " ok " + records.sizeInBytes());
        }
        for (int a = 1; a < args.length; a++) {
            byte[] k = args[a].getBytes(StandardCharsets.UTF_8);
            System.out.println("MURMUR2 " + args[a] + " " + Utils.murmur2(k));
        }
    }
}
