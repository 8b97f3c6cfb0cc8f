import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import com.esotericsoftware.kryo.serializers.FieldSerializer;
import finlake.FraudState;
import java.util.ArrayList;
import java.util.Random;

/**
 * One customer's fraud state written and read back by Kryo as Spark's Kryo encoder does
 * (references tracked, classes unregistered, its instantiator strategy), once with Kryo's
 * generic field serializer of the object graph (how finlake wrote it before) and once with the
 * state's own field-by-field form ({@code KryoSerializable}). Prints one JSON line per pass.
 * Arguments: transactions per card (3 cards, 20 user events), round trips per pass.
 */
public final class StateRoundTrip {
    public static void main(String[] args) {
        int perCard = Integer.parseInt(args[0]), n = Integer.parseInt(args[1]);
        FraudState.State st = new FraudState.State();
        Random r = new Random(1);
        for (int c = 0; c < 3; c++) {
            ArrayList<FraudState.Tx> l = new ArrayList<>();
            for (int i = 0; i < perCard; i++) {
                FraudState.Tx t = new FraudState.Tx();
                t.ts = 1_700_000_000_000L + i * 1000L; t.id = "tx-" + c + "-" + i + "-0f9e8d7c6b5a4321";
                t.merchant = "M" + r.nextInt(500); t.country = "DE"; t.amt = r.nextDouble() * 100; t.lat = 52.1; t.lon = 13.4;
                t.present = true;
                l.add(t);
            }
            st.cards.put("card-" + c + "-0123456789abcdef0123456789abcdef0123456789abcdef", l);
        }
        for (int i = 0; i < 20; i++) {
            FraudState.Ue u = new FraudState.Ue();
            u.ts = 1_700_000_000_000L + i; u.id = "ue-" + i + "-0f9e8d7c"; u.country = "DE";
            st.user.add(u);
        }
        for (String mode : new String[] {"generic", "field_by_field", "generic", "field_by_field", "generic", "field_by_field"}) {
            Kryo k = new Kryo();
            k.setReferences(true);
            k.setRegistrationRequired(false);
            k.setInstantiatorStrategy(new Kryo.DefaultInstantiatorStrategy(new org.objenesis.strategy.StdInstantiatorStrategy()));
            if (mode.equals("generic")) k.register(FraudState.State.class, new FieldSerializer<>(k, FraudState.State.class));
            Output out = new Output(1 << 16, -1);
            int bytes = 0;
            long t0 = System.nanoTime();
            for (int i = 0; i < n; i++) {
                out.clear();
                k.writeClassAndObject(out, st);
                byte[] b = out.toBytes();
                bytes = b.length;
                k.readClassAndObject(new Input(b));
            }
            System.out.printf("{\"mode\": \"%s\", \"transactions\": %d, \"bytes\": %d, \"us_per_round_trip\": %.2f}%n",
                              mode, 3 * perCard, bytes, (System.nanoTime() - t0) / 1e3 / n);
        }
    }
}
